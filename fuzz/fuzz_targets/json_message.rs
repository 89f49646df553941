//! Any text into the JSON feed-message parser: an error or a message that
//! survives a round trip, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    let _ = checks::json_message(data);
});
