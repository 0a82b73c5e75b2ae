//! Whatever arrives with a valid signature: form bodies, interaction
//! payloads, Events API bodies, and the modal's values decode or are
//! refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vessel_bot::slack::payloads;

fuzz_target!(|data: &[u8]| {
    let _ = payloads::command(data);
    if let Ok(payloads::Interaction::ViewSubmission { values, .. }) = payloads::interaction(data) {
        let _ = vessel_bot::views::modal::read_submission(&values);
    }
    let _ = payloads::event(data);
    if let Ok(values) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = vessel_bot::views::modal::read_submission(&values);
    }
});
