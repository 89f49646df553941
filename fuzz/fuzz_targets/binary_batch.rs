//! Any bytes into the binary batch decoder: an error or ticks that encode
//! back to the same frame, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    let _ = checks::binary_batch(data);
});
