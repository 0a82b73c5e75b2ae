//! Whatever arrives with a valid signature: command forms, interaction
//! payloads and Events API bodies decode into slack-morphism's types (or are
//! refused), are routed, and the modal's state is read, never panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_morphism::prelude::{SlackPushEvent, SlackViewState};
use vessel_bot::slack::payloads::{self, Interaction};
use vessel_bot::views::modal;

fuzz_target!(|data: &[u8]| {
    // The events layer hands on only bodies that are text.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let _ = payloads::command(body);
    if let Ok(event) = payloads::interaction(body) {
        if let Ok(Interaction::SubmitCreate { state, .. }) = payloads::route(event, modal::CALLBACK_ID)
        {
            let _ = modal::read_submission(&state);
        }
    }
    if let Ok(SlackPushEvent::EventCallback(event)) = payloads::push_event(body) {
        let _ = payloads::home_opened(&event);
    }
    if let Ok(state) = serde_json::from_str::<SlackViewState>(body) {
        let _ = modal::read_submission(&state);
    }
});
