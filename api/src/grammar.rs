//! The command grammar every front door shares: `gpu=2 queue=3090 mem=64G
//! for=2d …` into a `CreateVessel`, with the same messages in Slack, the
//! console and the CLI. Values go through the same parsers the orchestrator
//! uses, so a value accepted here is never refused there for its form.

use crate::names::{ImageRef, QueueName, VesselName};
use crate::units::{ByteSize, Span};
use crate::vessels::CreateVessel;

/// The options of a create, in the order the usage line gives them.
pub const CREATE_OPTIONS: &[&str] = &["gpu", "queue", "cpu", "mem", "image", "name", "for"];

/// The flags of a create: words that stand alone instead of `key=value`.
pub const CREATE_FLAGS: &[&str] = &[NO_WAIT];

/// Fail at once when nothing fits, instead of waiting in line.
pub const NO_WAIT: &str = "--no-wait";

/// The options part of a create's usage line.
pub const CREATE_SYNOPSIS: &str =
    "[gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d] [--no-wait]";

/// A sentence saying what is wrong with the words, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GrammarError(pub String);

fn err(message: impl Into<String>) -> GrammarError {
    GrammarError(message.into())
}

/// Reads `key=value` words and flags (`--no-wait`) into a request. Unknown
/// options are errors with a suggestion; an option given twice is an error.
pub fn parse_create<'a>(
    words: impl IntoIterator<Item = &'a str>,
) -> Result<CreateVessel, GrammarError> {
    let mut request = CreateVessel::default();
    for word in words {
        if let Some(flag) = as_flag(word) {
            set_flag(&mut request, word, &flag)?;
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            return Err(err(format!(
                "`{word}` is not an option: write key=value, like gpu=2"
            )));
        };
        set_option(&mut request, key, value)?;
    }
    Ok(request)
}

/// A word that is written as a flag, normalised to `--name`, lowercase.
/// Slack (and macOS's smart punctuation) turns a typed `--` into an em or
/// en dash, so `—no-wait` is read as the `--no-wait` the person typed.
fn as_flag(word: &str) -> Option<String> {
    let rest = word
        .strip_prefix("--")
        .or_else(|| word.strip_prefix('\u{2014}'))
        .or_else(|| word.strip_prefix('\u{2013}'))?;
    Some(format!("--{}", rest.to_ascii_lowercase()))
}

fn set_flag(request: &mut CreateVessel, word: &str, flag: &str) -> Result<(), GrammarError> {
    match flag {
        NO_WAIT if request.wait.is_some() => Err(err(format!("`{word}` is given twice"))),
        NO_WAIT => {
            request.wait = Some(false);
            Ok(())
        }
        _ => Err(err(match suggest(flag, CREATE_FLAGS) {
            Some(s) => format!("unknown flag `{word}` — did you mean `{s}`?"),
            None => format!(
                "unknown flag `{word}`; the flag is {}",
                CREATE_FLAGS.join(", ")
            ),
        })),
    }
}

/// Sets one option: what a form does field by field, so each error can be
/// shown next to its own field.
pub fn set_option(request: &mut CreateVessel, key: &str, value: &str) -> Result<(), GrammarError> {
    let key_lc = key.to_ascii_lowercase();
    if value.is_empty() {
        return Err(err(format!("`{key}` needs a value")));
    }
    fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), GrammarError> {
        if slot.is_some() {
            return Err(err(format!("`{key}` is given twice")));
        }
        *slot = Some(value);
        Ok(())
    }
    let said = |e: &dyn std::fmt::Display| err(e.to_string());
    match key_lc.as_str() {
        "gpu" => once(&mut request.gpus, key, number(value, "gpu", 0, 64)?),
        "cpu" => once(&mut request.cpus, key, number(value, "cpu", 1, 1024)?),
        "queue" => once(
            &mut request.queue,
            key,
            QueueName::parse(value).map_err(|e| said(&e))?,
        ),
        "mem" => once(
            &mut request.memory,
            key,
            ByteSize::parse(value).map_err(|e| said(&e))?,
        ),
        "image" => once(
            &mut request.image,
            key,
            ImageRef::parse(value).map_err(|e| said(&e))?,
        ),
        "name" => once(
            &mut request.name,
            key,
            VesselName::parse(value).map_err(|e| said(&e))?,
        ),
        "for" => once(&mut request.lifetime, key, parse_span(value)?),
        _ => Err(err(match suggest(&key_lc, CREATE_OPTIONS) {
            Some(s) => format!("unknown option `{key}` — did you mean `{s}`?"),
            None => format!(
                "unknown option `{key}`; options are {}",
                CREATE_OPTIONS.join(", ")
            ),
        })),
    }
}

/// A duration as every front door reads it (`90m`, `24h`, `2d`).
pub fn parse_span(value: &str) -> Result<Span, GrammarError> {
    Span::parse(value).map_err(|e| err(e.to_string()))
}

fn number(value: &str, key: &str, min: u32, max: u32) -> Result<u32, GrammarError> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(format!(
            "`{key}` must be a whole number from {min} to {max}, not `{value}`"
        ))),
    }
}

/// The closest known word, if it is close enough to be a typo.
pub fn suggest(word: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 2 + 1) || (word.len() > 2 && k.starts_with(word)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(text: &str) -> Result<CreateVessel, GrammarError> {
        parse_create(text.split_whitespace())
    }

    #[test]
    fn every_option_is_read_into_its_type() {
        let c =
            create("gpu=2 queue=3090 cpu=8 mem=64G image=vessel/cuda12:latest name=train for=2d")
                .unwrap();
        assert_eq!(c.gpus, Some(2));
        assert_eq!(c.queue.unwrap().as_str(), "3090");
        assert_eq!(c.cpus, Some(8));
        assert_eq!(c.memory, Some(ByteSize(64 << 30)));
        assert_eq!(c.image.unwrap().as_str(), "vessel/cuda12:latest");
        assert_eq!(c.name.unwrap().as_str(), "train");
        assert_eq!(c.lifetime.unwrap().to_string(), "2d");
    }

    #[test]
    fn the_units_are_the_orchestrators() {
        // Once only the orchestrator read these.
        assert_eq!(
            create("mem=512K").unwrap().memory,
            Some(ByteSize(512 << 10))
        );
        assert_eq!(
            create("for=30s").unwrap().lifetime.unwrap().to_string(),
            "30s"
        );
    }

    #[test]
    fn no_wait_is_a_flag_anywhere_among_the_options() {
        assert_eq!(
            create("gpu=2").unwrap().wait,
            None,
            "waiting is the default"
        );
        for text in [
            "gpu=2 --no-wait queue=3090",
            "--no-wait gpu=2 queue=3090",
            "gpu=2 queue=3090 --NO-WAIT",
            // What Slack makes of a typed `--`.
            "gpu=2 queue=3090 \u{2014}no-wait",
            "gpu=2 queue=3090 \u{2013}no-wait",
        ] {
            let c = create(text).unwrap();
            assert_eq!(c.wait, Some(false), "{text}");
            assert_eq!(c.gpus, Some(2), "{text}");
        }
        assert_eq!(
            create("--nowait").unwrap_err().0,
            "unknown flag `--nowait` — did you mean `--no-wait`?"
        );
        assert!(CREATE_SYNOPSIS.contains(NO_WAIT));
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            create("gpus=2").unwrap_err().0,
            "unknown option `gpus` — did you mean `gpu`?"
        );
        for (bad, says) in [
            ("gpu=two", "whole number"),
            ("mem=lots", "not a size"),
            ("for=3y", "not a duration"),
            ("gpu=2 gpu=3", "given twice"),
            ("gpu", "key=value"),
            ("cpu=0", "from 1"),
            ("name=Bad", "not a valid name"),
            ("image=-rm", "not an image"),
            ("--no-wait --no-wait", "given twice"),
            ("--wait", "unknown flag"),
        ] {
            let e = create(bad).unwrap_err();
            assert!(e.0.contains(says), "{bad}: {e}");
        }
    }
}
