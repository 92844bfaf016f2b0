//! Key and user record JSON. Properties: never panics; an accepted record serializes to JSON
//! that reads back equal and serializes to the same bytes (stable form); the value form
//! agrees with the text form.
#![no_main]

use keycel::record::{KeyRecord, UserRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = KeyRecord::from_json(text) {
        let json = r.to_json();
        let back = KeyRecord::from_json(&json).expect("own output reads back");
        assert_eq!(back, r);
        assert_eq!(back.to_json(), json, "serialization is not stable");
        assert_eq!(KeyRecord::from_value(r.to_value()).expect("value form reads back"), r);
        assert!(r.validate().is_ok());
    }
    if let Ok(u) = UserRecord::from_json(text) {
        let json = serde_json::to_string(&u).expect("serializes");
        assert_eq!(UserRecord::from_json(&json).expect("own output reads back"), u);
    }
});
