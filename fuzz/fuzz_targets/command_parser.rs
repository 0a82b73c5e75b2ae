//! `/vessel …` and `/fleet …` text of any shape: the parser answers, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (command, rest) = text.split_once('\n').unwrap_or(("/vessel", &text));
    let _ = vessel_bot::commands::parse(command, rest);
    let _ = vessel_bot::commands::parse("/vessel", &text);
    let _ = vessel_bot::commands::parse("/fleet", &text);
});
