//! A second (and third) process for the key-derivation tests (`tests/key_properties.rs`): it
//! calls one cached function with arguments read from stdin and reports whether each call
//! was a hit or a miss, so the test can compare the keys that separate processes write.
//!
//! Usage: `key_probe REDIS_URL`, then one JSON array per line on stdin:
//! `[text, count, words, maybe, [pair_text, pair_count]]`, e.g.
//! `["a:b", 7, ["x", "y"], null, ["z", 0]]`. For each line it prints `hit`, `miss` or
//! `bypassed`. A line that does not parse ends it with exit code 2.
//!
//! The package's only dependencies are `cache-runtime`, `serde` and `tokio`, so the JSON is
//! read by the small parser below.

use std::io::{BufRead, Write};

use cache_runtime::{cache, CacheConfig};

#[cache(expire = 600, namespace = "probe")]
async fn probe_key(
    text: String,
    count: u64,
    words: Vec<String>,
    maybe: Option<i32>,
    pair: (String, u64),
) -> u64 {
    let _ = (text, words, maybe, pair);
    count.wrapping_add(1)
}

/// A parsed JSON value; numbers keep their text so that `u64` and `i32` parse exactly.
#[derive(Debug)]
enum Json {
    Null,
    Number(String),
    Text(String),
    Array(Vec<Json>),
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        match self.chars.next() {
            Some(c) if c == want => Ok(()),
            other => Err(format!("expected {want:?}, found {other:?}")),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        word.chars().try_for_each(|c| self.expect(c))
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_space();
        match self.chars.peek().copied() {
            Some('n') => self.literal("null").map(|()| Json::Null),
            Some('"') => self.text().map(Json::Text),
            Some('[') => self.array().map(Json::Array),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let mut number = String::new();
                while let Some(c) = self
                    .chars
                    .next_if(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    number.push(c);
                }
                Ok(Json::Number(number))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn array(&mut self) -> Result<Vec<Json>, String> {
        self.expect('[')?;
        let mut items = Vec::new();
        self.skip_space();
        if self.chars.next_if_eq(&']').is_some() {
            return Ok(items);
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            match self.chars.next() {
                Some(',') => continue,
                Some(']') => return Ok(items),
                other => return Err(format!("expected ',' or ']', found {other:?}")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut n = 0;
        for _ in 0..4 {
            let c = self.chars.next().ok_or("truncated \\u escape")?;
            n = n * 16 + c.to_digit(16).ok_or(format!("bad hex digit {c:?}"))?;
        }
        Ok(n)
    }

    fn text(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.chars.next().ok_or("unterminated string")? {
                '"' => return Ok(out),
                '\\' => match self.chars.next().ok_or("truncated escape")? {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let high = self.hex4()?;
                        let code = if (0xD800..0xDC00).contains(&high) {
                            self.literal("\\u")?;
                            let low = self.hex4()?;
                            if !(0xDC00..0xE000).contains(&low) {
                                return Err(format!("bad low surrogate {low:x}"));
                            }
                            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            high
                        };
                        out.push(char::from_u32(code).ok_or(format!("bad code point {code:x}"))?);
                    }
                    other => return Err(format!("bad escape \\{other}")),
                },
                c => out.push(c),
            }
        }
    }
}

fn parse(line: &str) -> Result<Json, String> {
    let mut parser = Parser {
        chars: line.chars().peekable(),
    };
    let value = parser.value()?;
    parser.skip_space();
    match parser.chars.next() {
        None => Ok(value),
        Some(c) => Err(format!("trailing {c:?}")),
    }
}

fn text(value: Json) -> Result<String, String> {
    match value {
        Json::Text(s) => Ok(s),
        other => Err(format!("expected a string, found {other:?}")),
    }
}

fn number<T: std::str::FromStr>(value: Json) -> Result<T, String> {
    match value {
        Json::Number(n) => n.parse().map_err(|_| format!("{n} is out of range")),
        other => Err(format!("expected a number, found {other:?}")),
    }
}

fn array(value: Json, len: Option<usize>) -> Result<Vec<Json>, String> {
    match value {
        Json::Array(items) if len.is_none_or(|n| n == items.len()) => Ok(items),
        other => Err(format!(
            "expected an array of {len:?} items, found {other:?}"
        )),
    }
}

type Args = (String, u64, Vec<String>, Option<i32>, (String, u64));

fn args(line: &str) -> Result<Args, String> {
    let mut items = array(parse(line)?, Some(5))?.into_iter();
    let mut next = || items.next().expect("five items");
    let text_arg = text(next())?;
    let count = number(next())?;
    let words = array(next(), None)?
        .into_iter()
        .map(text)
        .collect::<Result<_, _>>()?;
    let maybe = match next() {
        Json::Null => None,
        other => Some(number(other)?),
    };
    let mut pair = array(next(), Some(2))?.into_iter();
    let pair_text = text(pair.next().expect("two items"))?;
    let pair_count = number(pair.next().expect("two items"))?;
    Ok((text_arg, count, words, maybe, (pair_text, pair_count)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: key_probe REDIS_URL < lines of JSON arrays");
    cache_runtime::init(CacheConfig::redis(url))
        .await
        .expect("init");
    let mut out = std::io::stdout().lock();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.expect("read stdin");
        let (text, count, words, maybe, pair) = match args(&line) {
            Ok(args) => args,
            Err(e) => {
                eprintln!("line {}: {e}: {line}", n + 1);
                std::process::exit(2);
            }
        };
        let before = cache_runtime::stats();
        let got = probe_key(text, count, words, maybe, pair).await;
        assert_eq!(got, count.wrapping_add(1), "line {}", n + 1);
        let after = cache_runtime::stats();
        let outcome = if after.hits > before.hits {
            "hit"
        } else if after.misses > before.misses {
            "miss"
        } else {
            "bypassed"
        };
        writeln!(out, "{outcome}").expect("write stdout");
    }
}
