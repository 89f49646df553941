//! Any bytes into the inbox envelope decoder: an error or an envelope that
//! encodes back to the same bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    let _ = checks::inbox_envelope(data);
});
