//! The terminal front end: the same commands and the same messages as Slack,
//! rendered as text, with buttons as numbered choices, against the real
//! orchestrator. DMs appear as they happen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::actions::Bot;
use crate::commands::{self, VesselCommand};
use crate::events::{self, DeliveryError, Inbox, SavedCursor};
use crate::orchestrator::Actor;
use crate::shutdown;
use crate::slack::web::MessageRef;
use crate::views::{Button, Message};

/// How long `quit` waits for the messages in hand to be shown.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The buttons of the last message shown, by number.
type Choices = Arc<Mutex<Vec<Button>>>;

struct ConsoleInbox {
    subject: String,
    choices: Choices,
    counter: AtomicU64,
}

fn show(message: &Message, choices: &Choices, prefix: &str) {
    let buttons: Vec<Button> = message.buttons().into_iter().cloned().collect();
    if !buttons.is_empty() {
        *choices.lock().expect("poisoned") = buttons;
    }
    println!("{prefix}{}\n", message.to_text());
}

impl Inbox for ConsoleInbox {
    fn wants(&self, user: &str) -> bool {
        user == self.subject
    }

    async fn post(
        &self,
        _user: &str,
        message: &Message,
    ) -> Result<Option<MessageRef>, DeliveryError> {
        show(message, &self.choices, "\n📬 ");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Ok(Some(MessageRef {
            channel: "console".into(),
            ts: n.to_string(),
        }))
    }

    async fn update(&self, _at: &MessageRef, message: &Message) -> Result<(), DeliveryError> {
        show(message, &self.choices, "\n✏️  ");
        Ok(())
    }

    async fn admin(&self, _message: &Message) -> Result<(), DeliveryError> {
        Ok(())
    }
}

pub async fn run(bot: Arc<Bot>, user: &str, admin: bool) -> anyhow::Result<()> {
    let subject = format!("console:{user}");
    let actor = Actor {
        subject: subject.clone(),
        unix_name: Some(user.to_string()),
        admin,
    };
    let choices: Choices = Arc::new(Mutex::new(Vec::new()));

    // Messages start from now: a console is not a mailbox of old news.
    let key = format!("console-cursor:{user}");
    if bot.orch.state_get::<SavedCursor>(&key).await?.is_none() {
        let tail = bot.orch.events(-1, Duration::ZERO).await?;
        let start = SavedCursor {
            safe: tail.next,
            seen: Default::default(),
        };
        bot.orch.state_put(&key, &start).await?;
    }
    let inbox = Arc::new(ConsoleInbox {
        subject: subject.clone(),
        choices: choices.clone(),
        counter: AtomicU64::new(1),
    });
    let (stopper, shutdown) = shutdown::channel();
    let delivery = tokio::spawn(events::deliver_until_stopped(
        bot.clone(),
        inbox,
        Some(key),
        shutdown,
    ));

    println!(
        "Vessel console — acting as `{user}`{}. Type /vessel help, a number to press a button, or quit.\n",
        if admin { " (admin)" } else { "" }
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        print_prompt();
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if matches!(line, "quit" | "exit" | "q") {
            break;
        }
        if let Ok(n) = line.parse::<usize>() {
            let button = choices
                .lock()
                .expect("poisoned")
                .get(n.wrapping_sub(1))
                .cloned();
            match button {
                Some(b) if b.url.is_some() => println!("Open {}\n", b.url.unwrap_or_default()),
                Some(b) => {
                    if let Some(reply) = bot.button(&actor, &b.action_id, &b.value).await {
                        show(&reply, &choices, "");
                    }
                }
                None => println!("No button {n} on the last message.\n"),
            }
            continue;
        }
        let reply = answer(&bot, &actor, line).await;
        show(&reply, &choices, "");
    }
    // The last places of waiting requests are shown before the prompt goes.
    stopper.stop();
    if tokio::time::timeout(STOP_GRACE, delivery).await.is_err() {
        eprintln!("(stopped before the last messages could be shown)");
    }
    Ok(())
}

fn print_prompt() {
    use std::io::Write;
    print!("vessel> ");
    let _ = std::io::stdout().flush();
}

/// One line typed at the console, answered as Slack would answer it.
pub async fn answer(bot: &Bot, actor: &Actor, line: &str) -> Message {
    let line = line.trim().trim_start_matches('/');
    let (command, text) = match line.split_once(char::is_whitespace) {
        Some((c, rest)) if c == "vessel" || c == "fleet" => (c.to_string(), rest.to_string()),
        None if line == "vessel" || line == "fleet" => (line.to_string(), String::new()),
        // `create gpu=1` is short for `/vessel create gpu=1`.
        _ => ("vessel".to_string(), line.to_string()),
    };
    let parsed = match commands::parse(&command, &text) {
        Ok(c) => c,
        Err(e) => return crate::views::error(&e.message, Some(e.usage)),
    };
    // `keys add` alone means the usual public key.
    if text.trim() == "keys add" {
        let path = std::env::var("HOME")
            .map(|h| format!("{h}/.ssh/id_ed25519.pub"))
            .unwrap_or_default();
        return match std::fs::read_to_string(&path) {
            Ok(key) => {
                bot.command(
                    actor,
                    commands::Command::Vessel(VesselCommand::KeysAdd(key.trim().to_string())),
                )
                .await
            }
            Err(e) => crate::views::error(
                &format!("cannot read {path} ({e}); paste the key: keys add ssh-ed25519 AAAA…"),
                None,
            ),
        };
    }
    bot.command(actor, parsed).await
}
