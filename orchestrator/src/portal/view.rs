//! The portal's frame: one layout for every page, its stylesheet and its
//! small script (copy buttons), served from the binary so a page needs
//! nothing from outside.

use axum::http::header;
use axum::response::IntoResponse;
use maud::{html, Markup, DOCTYPE};

/// Who is looking, for the navigation: admins see the Admin link.
pub struct Nav<'a> {
    pub subject: &'a str,
    pub admin: bool,
    pub csrf: &'a str,
}

pub fn page(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    page_with(title, nav, false, body)
}

/// A page that follows changes live (the script listens on `/live`).
pub fn live_page(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    page_with(title, nav, true, body)
}

fn page_with(title: &str, nav: Option<&Nav>, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Vessel" }
                link rel="stylesheet" href="/portal.css";
                script src="/portal.js" defer {}
            }
            body data-live[live] {
                header {
                    a.brand href="/" { "Vessel" }
                    @if let Some(nav) = nav {
                        nav {
                            a href="/" { "My vessels" }
                            a href="/new" { "New vessel" }
                            a href="/fleet" { "Fleet" }
                            @if nav.admin { a href="/admin" { "Admin" } }
                        }
                        form.signout method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(nav.csrf);
                            span.who { (nav.subject) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A hidden CSRF field for a form.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// How a form's button looks: the main action, a quiet one, or one that
/// destroys (which asks for a ticked box first).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Quiet,
    Danger,
}

/// A one-button form posting to `action` with the CSRF token. With
/// `confirm`, a required checkbox labelled with it comes first: the server
/// refuses the post without it, so a stray click or a script-less browser
/// cannot destroy anything.
pub fn action_form(
    action: &str,
    token: &str,
    label: &str,
    button: Button,
    confirm: Option<&str>,
) -> Markup {
    let class = match button {
        Button::Quiet => "quiet",
        Button::Danger => "danger",
    };
    html! {
        form.inline method="post" action=(action) {
            (csrf(token))
            @if let Some(c) = confirm {
                label.inline { input type="checkbox" name="confirm" required; " " (c) }
                " "
            }
            button class=(class) type="submit" { (label) }
        }
    }
}

/// An inline SVG sparkline of `points` (0–100 %), drawn on the server; an
/// empty history draws nothing. The label says in words what the line
/// shows, for screen readers and for anyone who cannot tell the shape.
pub fn sparkline(points: &[f64], what: &str) -> Markup {
    if points.is_empty() {
        return html! { span.muted { "no data" } };
    }
    const W: f64 = 60.0;
    const H: f64 = 16.0;
    // One reading (a new host, a fresh Prometheus) is a flat line, not an
    // invisible dot.
    let flat;
    let points = if points.len() == 1 {
        flat = [points[0], points[0]];
        &flat[..]
    } else {
        points
    };
    let step = W / (points.len() - 1) as f64;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let y = H - (p.clamp(0.0, 100.0) / 100.0) * H;
            format!("{:.0},{:.1}", i as f64 * step, y)
        })
        .collect();
    let max = points.iter().cloned().fold(0.0, f64::max);
    let last = points.last().copied().unwrap_or_default();
    let label = format!("{what}: now {last:.0}%, peak {max:.0}%");
    html! {
        svg.spark viewBox="0 0 60 16" width="60" height="16" role="img" aria-label=(label) {
            title { (label) }
            polyline points=(coords.join(" ")) {}
        }
        " " span.muted { (format!("{last:.0}%")) }
    }
}

/// A state label: a word and a colour, never colour alone.
pub fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge s-" (state) } { (state) } }
}

const CSS: &str = r#"
:root{--fg:#1b1f24;--muted:#5b6570;--bg:#f6f7f9;--card:#fff;--line:#d9dde3;--accent:#2457c5;
--free:#2e9e5b;--used:#2457c5;--idle:#c98a0a;--drained:#7a7f87;--lost:#c23b3b}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;padding:.6rem 1rem;background:#14213d;color:#fff}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:1.1rem}
nav{display:flex;gap:1rem;flex:1}nav a:focus,nav a:hover{text-decoration:underline}
.signout{display:flex;gap:.5rem;align-items:center}.who{opacity:.8}
main{max-width:72rem;margin:0 auto;padding:1rem}h1{font-size:1.4rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem;margin:0 0 1rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line)}
button,.button{font:inherit;padding:.35rem .8rem;border-radius:6px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
button.quiet{background:#fff;color:var(--accent)}button.danger{background:var(--lost);border-color:var(--lost)}
button:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #f0b400;outline-offset:2px}
label{display:block;font-weight:600;margin-top:.6rem}input,select{font:inherit;padding:.3rem;border:1px solid var(--line);border-radius:6px;width:100%;max-width:24rem}
.field-error{color:var(--lost);font-weight:600;margin:.2rem 0}.error{border-left:4px solid var(--lost);padding:.5rem 1rem;background:#fdeeee}
pre{background:#f0f2f5;padding:.5rem;overflow:auto;border-radius:6px}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.85rem;border:1px solid currentColor}
.s-running{color:var(--used)}.s-expired,.s-lost{color:var(--lost)}.s-pending,.s-provisioning{color:var(--idle)}.s-failed,.s-buried{color:var(--lost)}
.grid{display:flex;flex-wrap:wrap;gap:3px}
.gpu{width:4.2rem;min-height:2.6rem;border-radius:4px;padding:2px 4px;font-size:.72rem;color:#fff;overflow:hidden}
.g-free{background:var(--free)}.g-used{background:var(--used)}.g-idle{background:var(--idle)}.g-drained{background:var(--drained)}.g-lost{background:var(--lost)}
.spark{vertical-align:middle}.spark polyline{fill:none;stroke:var(--accent);stroke-width:1.5}
.tabs{display:flex;gap:1rem;margin:0 0 1rem}.tabs a[aria-current]{font-weight:700}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}.filters label{margin:0}
.pager{display:flex;gap:1rem}
.legend span{margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;vertical-align:middle}.muted{color:var(--muted)}
.inline{display:inline}label.inline{display:inline;margin:0 .3rem 0 0;font-weight:400}
input[type=checkbox]{width:auto;vertical-align:middle}form.inline select{width:auto}
@media (max-width:40rem){table,tbody,tr,td{display:block}th{display:none}td{border:0}tr{border-bottom:1px solid var(--line)}}
"#;

const JS: &str = r#"
// Copy buttons: the text of the element named by data-copy.
document.addEventListener('click', function (e) {
  var b = e.target.closest('button[data-copy]');
  if (!b) return;
  var el = document.getElementById(b.dataset.copy);
  if (!el || !navigator.clipboard) return;
  navigator.clipboard.writeText(el.textContent).then(function () { b.textContent = 'Copied'; });
});
// Live pages: on `changed`, fetch the page again and swap its main part,
// unless the person is in the middle of a form there.
(function () {
  if (!document.body.hasAttribute('data-live') || !window.EventSource) return;
  var drawn = document.getElementById('usage');
  var es = new EventSource('/live?page=' + encodeURIComponent(location.pathname) +
    (drawn ? '&usage_at=' + encodeURIComponent(drawn.dataset.at) : ''));
  es.addEventListener('changed', function () {
    var a = document.activeElement;
    if (a && a.form && a.form.querySelector('input[type=checkbox]:checked')) return;
    fetch(location.href, { credentials: 'same-origin' }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('main');
      var main = document.querySelector('main');
      if (fresh && main) main.innerHTML = fresh.innerHTML;
    });
  });
})();
"#;

pub async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

pub async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_the_box_and_says_its_values_in_words() {
        let svg = sparkline(&[0.0, 50.0, 100.0, 150.0], "gpu-1").into_string();
        // x from 0 to 60, y from the bottom (0 %) to the top (100 %, and
        // what exceeds it is clamped).
        assert!(
            svg.contains(r#"points="0,16.0 20,8.0 40,0.0 60,0.0""#),
            "{svg}"
        );
        assert!(svg.contains("gpu-1: now 150%, peak 150%"), "{svg}");
        let one = sparkline(&[40.0], "gpu-2").into_string();
        assert!(one.contains(r#"points="0,9.6 60,9.6""#), "{one}");
        assert_eq!(
            sparkline(&[], "gpu-1").into_string(),
            r#"<span class="muted">no data</span>"#
        );
    }

    #[test]
    fn a_destructive_form_asks_for_its_box_and_carries_its_token() {
        let form = action_form("/x/kill", "tok", "Kill", Button::Danger, Some("Yes")).into_string();
        assert!(form.contains(r#"name="csrf" value="tok""#), "{form}");
        assert!(form.contains(r#"name="confirm" required"#), "{form}");
        assert!(form.contains(r#"class="danger""#), "{form}");
        let quiet = action_form("/x/keep", "tok", "Keep", Button::Quiet, None).into_string();
        assert!(!quiet.contains("confirm"), "{quiet}");
    }
}

/// The characters a path segment keeps as they are (RFC 3986 unreserved);
/// everything else, `/` and `.` runs included, is percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// One path segment of a link or form action, percent-encoded: a subject
/// or host name like `../hosts/gpu-1/drain` stays one segment.
pub fn seg(s: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    // `.` is unreserved but `.`/`..` alone are path steps: encode dots too.
    encoded.replace('.', "%2E")
}

#[cfg(test)]
mod segment_tests {
    use super::seg;

    #[test]
    fn a_segment_cannot_climb_or_split_the_path() {
        assert_eq!(
            seg("../hosts/gpu-1/drain?x="),
            "%2E%2E%2Fhosts%2Fgpu-1%2Fdrain%3Fx%3D"
        );
        assert_eq!(seg("U0123ABC"), "U0123ABC");
        assert_eq!(seg("alice@lab.org"), "alice%40lab%2Eorg");
    }
}
