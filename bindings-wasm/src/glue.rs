//! Imports from `js/glue.js` (copied next to the generated bindings by wasm-bindgen).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// `new KeycelError(code, message, extra)`.
    #[wasm_bindgen(js_name = makeError)]
    pub(crate) fn make_error(code: &str, message: &str, extra: JsValue) -> JsValue;

    /// Headers (`Headers`, `Map`, pairs or object) flattened to `[name, value, ...]`.
    #[wasm_bindgen(js_name = flattenHeaders, catch)]
    pub(crate) fn flatten_headers(headers: &JsValue) -> Result<Vec<String>, JsValue>;

    /// A decision as a plain object, from its packed strings (see `decision.rs`).
    #[wasm_bindgen(js_name = makeDecision)]
    pub(crate) fn make_decision(
        allowed: bool,
        status: u16,
        packed: String,
        lease: JsValue,
        needs_rehash: bool,
        cache_hit: bool,
        via_previous_secret: bool,
        rehash: JsValue,
    ) -> JsValue;
}
