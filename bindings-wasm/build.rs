//! Links the wasm module with an 8 MiB stack: the `cel` parser recurses deeply when a policy
//! is loaded, and wasm32's default 1 MiB stack is not enough for long expressions.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=8388608");
    }
}
