//! Chat templates: the Jinja source shipped with a model, rendered with minijinja the way HF transformers'
//! `apply_chat_template` renders it with jinja2.
//!
//! Parity points with transformers (`utils/chat_template_utils.py`):
//! - `trim_blocks` and `lstrip_blocks` on, trailing newline of the template dropped;
//! - `{% break %}`/`{% continue %}` (loop controls), Python string/dict methods (`.strip()`, `.items()`, ...)
//!   through minijinja-contrib's pycompat callback;
//! - `raise_exception(msg)` and `strftime_now(fmt)` globals;
//! - `tojson` writes Python `json.dumps` output (`", "`/`": "` separators, no HTML escaping, `indent=`);
//! - `{% generation %}`/`{% endgeneration %}` (assistant-mask markers used for training) are removed;
//! - the special token strings (`bos_token`, `eos_token`, ...) are in the context.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};
use crate::tokenizer::{SpecialToken, TemplateSource, Tokenizer};

const TEMPLATE_NAME: &str = "chat_template";

/// One chat message. `role` is usually "system", "user" or "assistant".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Variables passed to the template besides `messages`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderOptions {
    /// End the prompt with the header of an assistant turn, so the model answers.
    pub add_generation_prompt: bool,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Only passed to templates that read `enable_thinking` (Qwen3-style); false asks for no reasoning block.
    pub enable_thinking: bool,
    /// Further variables (`tools`, `chat_template_kwargs`, ...); these override the fields above.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RenderOptions {
    /// Options with the tokenizer's BOS/EOS strings, as `apply_chat_template` passes them.
    pub fn for_tokenizer(tokenizer: &Tokenizer, add_generation_prompt: bool) -> Self {
        RenderOptions {
            add_generation_prompt,
            bos_token: tokenizer.bos_token().map(|t| t.text.clone()),
            eos_token: tokenizer.eos_token().map(|t| t.text.clone()),
            ..Default::default()
        }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    origin: String,
    takes_enable_thinking: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("takes_enable_thinking", &self.takes_enable_thinking)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles a template; `origin` names it in errors (a path, or `tokenizer_config.json#chat_template`).
    pub fn new(source: &str, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let source = strip_generation_tags(source);
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| LlmError::template(&origin, &e))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        let takes_enable_thinking = source.contains("enable_thinking");
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| LlmError::template(&origin, &e))?;
        Ok(ChatTemplate {
            env,
            origin,
            takes_enable_thinking,
        })
    }

    pub fn from_source(source: &TemplateSource) -> Result<Self> {
        Self::new(&source.text, source.origin.clone())
    }

    /// Reads an override template file (`--chat-template FILE`): Jinja text, or JSON with a `chat_template` key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| LlmError::io(path, e))?;
        let origin = path.display().to_string();
        if path.extension().is_some_and(|e| e == "json") {
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|source| LlmError::Json {
                    path: path.to_path_buf(),
                    source,
                })?;
            let inner = json
                .get("chat_template")
                .and_then(|v| v.as_str())
                .ok_or_else(|| LlmError::InvalidConfig {
                    path: path.to_path_buf(),
                    field: "chat_template".into(),
                    message: "missing or not a string".into(),
                })?;
            return Self::new(inner, origin);
        }
        Self::new(&text, origin)
    }

    /// The template that came with the tokenizer.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        let source = tokenizer.chat_template_source().ok_or_else(|| {
            LlmError::NoChatTemplate(format!(
                "neither chat_template.jinja nor tokenizer_config.json next to {} has one \
                 (pass a template file, or use raw prompts)",
                tokenizer.origin()
            ))
        })?;
        Self::from_source(source)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the template reads `enable_thinking` (Qwen3-style reasoning switch).
    pub fn takes_enable_thinking(&self) -> bool {
        self.takes_enable_thinking
    }

    /// Renders a conversation to the prompt text.
    pub fn render(&self, messages: &[Message], options: &RenderOptions) -> Result<String> {
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        self.render_json(&messages, options)
    }

    /// Renders messages given as JSON objects, for what [`Message`] cannot hold (`tool_calls`, `tool` turns,
    /// content lists, `reasoning_content`).
    pub fn render_json(
        &self,
        messages: &[serde_json::Value],
        options: &RenderOptions,
    ) -> Result<String> {
        let mut ctx = serde_json::Map::new();
        ctx.insert(
            "messages".into(),
            serde_json::Value::Array(messages.to_vec()),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            options.add_generation_prompt.into(),
        );
        if let Some(bos) = &options.bos_token {
            ctx.insert("bos_token".into(), bos.clone().into());
        }
        if let Some(eos) = &options.eos_token {
            ctx.insert("eos_token".into(), eos.clone().into());
        }
        if self.takes_enable_thinking {
            ctx.insert("enable_thinking".into(), options.enable_thinking.into());
        }
        for (k, v) in &options.extra {
            ctx.insert(k.clone(), v.clone());
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| LlmError::template(&self.origin, &e))?;
        template
            .render(Value::from(Serde(&ctx)))
            .map_err(|e| LlmError::template(&self.origin, &e))
    }

    /// Finds the token that ends an assistant turn (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, ...): renders a
    /// probe conversation and returns the first of `special_tokens` that follows the assistant's reply.
    /// `None` when the template renders nothing special after a reply, or cannot render the probe.
    pub fn end_of_turn_token(
        &self,
        special_tokens: &[SpecialToken],
        options: &RenderOptions,
    ) -> Option<SpecialToken> {
        const REPLY: &str = "etmlx probe reply 7f3a";
        let probe = [
            Message::user("etmlx probe question"),
            Message::assistant(REPLY),
        ];
        let options = RenderOptions {
            add_generation_prompt: false,
            ..options.clone()
        };
        let text = self.render(&probe, &options).ok()?;
        let after = &text[text.rfind(REPLY)? + REPLY.len()..];
        // Earliest match wins; at the same position the longer token (`<|im_end|>` over `<|im`).
        special_tokens
            .iter()
            .filter(|t| !t.text.is_empty())
            .filter_map(|t| {
                after
                    .find(&t.text)
                    .map(|pos| (pos, std::cmp::Reverse(t.text.len()), t))
            })
            .min_by_key(|(pos, len, _)| (*pos, *len))
            .map(|(_, _, t)| t.clone())
    }
}

/// Removes `{% generation %}` and `{% endgeneration %}` tags, keeping what they enclose. minijinja has no such
/// tag (mitsuhiko/minijinja#815); transformers only uses it to build assistant masks. The whitespace the tag
/// would have removed is removed too: `-` markers strip all whitespace on that side, otherwise `lstrip_blocks`
/// strips the indentation before a tag alone on its line and `trim_blocks` one newline after it.
pub fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(parsed) = parse_generation_tag(tag) else {
            out.push_str("{%");
            rest = &tag[2..];
            continue;
        };
        match parsed.left {
            Marker::Minus => out.truncate(out.trim_end().len()),
            Marker::Plus => {}
            Marker::None => {
                let line_start = out.rfind('\n').map_or(0, |i| i + 1);
                if out[line_start..].chars().all(|c| c == ' ' || c == '\t') {
                    out.truncate(line_start);
                }
            }
        }
        rest = &tag[parsed.len..];
        match parsed.right {
            Marker::Minus => rest = rest.trim_start(),
            Marker::Plus => {}
            Marker::None => {
                rest = rest
                    .strip_prefix("\r\n")
                    .or_else(|| rest.strip_prefix('\n'))
                    .unwrap_or(rest)
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Clone, Copy)]
enum Marker {
    None,
    Minus,
    Plus,
}

struct GenerationTag {
    len: usize,
    left: Marker,
    right: Marker,
}

fn marker(c: Option<char>) -> Marker {
    match c {
        Some('-') => Marker::Minus,
        Some('+') => Marker::Plus,
        _ => Marker::None,
    }
}

/// Parses a `{%[-+] generation|endgeneration [-+]%}` tag at the start of `s`.
fn parse_generation_tag(s: &str) -> Option<GenerationTag> {
    let body = s.strip_prefix("{%")?;
    let left = marker(body.chars().next());
    let inner = body.strip_prefix(['-', '+']).unwrap_or(body).trim_start();
    let inner = inner
        .strip_prefix("endgeneration")
        .or_else(|| inner.strip_prefix("generation"))?;
    let inner = inner.trim_start();
    let right = marker(inner.chars().next());
    let tail = inner
        .strip_prefix(['-', '+'])
        .unwrap_or(inner)
        .strip_prefix("%}")?;
    Some(GenerationTag {
        len: s.len() - tail.len(),
        left,
        right,
    })
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("template raised: {message}"),
    ))
}

fn strftime_now(format: String) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime_utc(secs, &format)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats a Unix time (UTC) with the strftime directives chat templates use (`%d %b %Y`, `%B`, `%A`, `%H:%M`...).
/// Unknown directives are written through unchanged.
pub fn strftime_utc(unix_secs: i64, format: &str) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let month_name = MONTHS[(month - 1) as usize];
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:2}")),
            Some('B') => out.push_str(month_name),
            Some('b') | Some('h') => out.push_str(&month_name[..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('j') => out.push_str(&format!("{day_of_year:03}")),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('I') => out.push_str(&format!("{:02}", (hour + 11) % 12 + 1)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `tojson` as jinja2 + transformers write it: `json.dumps(x, ensure_ascii=False, indent=indent)`.
fn tojson(
    value: &Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> std::result::Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    // transformers' tojson also takes ensure_ascii/separators/sort_keys; the defaults are what templates use.
    for ignored in ["ensure_ascii", "separators", "sort_keys"] {
        let _: Option<Value> = kwargs.get(ignored)?;
    }
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(usize::try_from(v)?),
    };
    let mut out = String::new();
    write_py_json(&mut out, value, indent, 0)?;
    Ok(Value::from_safe_string(out))
}

fn write_py_json(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    depth: usize,
) -> std::result::Result<(), Error> {
    const MAX_DEPTH: usize = 128;
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let (true, Some(i)) = (value.is_integer(), value.as_i64()) {
                out.push_str(&i.to_string());
            } else {
                let f = f64::try_from(value.clone())?;
                out.push_str(&py_float_repr(f));
            }
        }
        ValueKind::String => write_py_json_str(out, value.as_str().unwrap_or_default()),
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                match key.as_str() {
                    Some(s) => write_py_json_str(out, s),
                    None => write_py_json_str(out, &key.to_string()),
                }
                out.push_str(": ");
                write_py_json(out, &value.get_item(key)?, indent, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_py_json(out, item, indent, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialize a value of kind {kind}"),
            ))
        }
    }
    Ok(())
}

/// Python's `json.dumps` float text for the common cases (`1.0`, `0.5`, `NaN`).
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A JSON string with `ensure_ascii=False` escaping: quotes, backslash and control characters only.
fn write_py_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_are_removed_with_their_whitespace_markers() {
        let src = "A{% generation %}B{%- endgeneration -%}C{% if x %}D{% endif %}";
        assert_eq!(strip_generation_tags(src), "ABC{% if x %}D{% endif %}");
        // `-` markers eat all whitespace on their side; `+` keeps it.
        assert_eq!(strip_generation_tags("A \n {%- generation -%} \n B"), "AB");
        assert_eq!(strip_generation_tags("A {%+ generation +%} B"), "A  B");
        // A tag alone on its line: lstrip_blocks drops the indentation, trim_blocks the newline after it.
        assert_eq!(
            strip_generation_tags("A\n    {% generation %}\nB\n  {%endgeneration%}\nC"),
            "A\nB\nC"
        );
        // Not a generation tag: left alone.
        assert_eq!(
            strip_generation_tags("{% generations %}{%"),
            "{% generations %}{%"
        );
    }

    #[test]
    fn strftime_matches_known_dates() {
        // 2024-07-23 00:00:00 UTC = 1721692800 (a Tuesday); Llama 3.1's template uses "%d %b %Y".
        assert_eq!(strftime_utc(1_721_692_800, "%d %b %Y"), "23 Jul 2024");
        assert_eq!(strftime_utc(1_721_692_800, "%A %B %j"), "Tuesday July 205");
        // 2000-02-29 12:34:56 UTC = 951827696 (leap day, a Tuesday).
        assert_eq!(
            strftime_utc(951_827_696, "%Y-%m-%d %H:%M:%S %a %I%p %%"),
            "2000-02-29 12:34:56 Tue 12PM %"
        );
        // 1969-12-31 23:59:59 UTC = -1 (a Wednesday).
        assert_eq!(
            strftime_utc(-1, "%Y-%m-%d %H:%M:%S %A"),
            "1969-12-31 23:59:59 Wednesday"
        );
    }
}
