//! Which page of a list a request asks for: a page number and size (`page`, `page_size`), or,
//! for lists that grow without bound and are read in a key's order (the ledger of files), a
//! cursor and a limit (`cursor`, `limit`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR;
use base64::Engine;

/// Largest page a request may ask for.
pub const MAX_PAGE_SIZE: i64 = 200;
/// The page size when a request names none.
pub const DEFAULT_PAGE_SIZE: i64 = 50;

/// A 1-based page number and a page size, both in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub size: i64,
}

impl PageRequest {
    /// Parses `page` and `page_size` as a query string gives them; each problem names its field.
    pub fn parse(
        page: Option<&str>,
        page_size: Option<&str>,
    ) -> Result<PageRequest, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let page = match page.map(str::parse::<i64>) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            _ => {
                problems.push(("page", "page must be a whole number from 1".to_owned()));
                1
            }
        };
        let size = match page_size.map(str::parse::<i64>) {
            None => DEFAULT_PAGE_SIZE,
            Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
            _ => {
                problems.push((
                    "page_size",
                    format!("page_size must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        };
        if problems.is_empty() {
            Ok(PageRequest { page, size })
        } else {
            Err(problems)
        }
    }

    /// Rows before this page.
    pub fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.size)
    }
}

/// Largest `limit` a keyset request may ask for.
pub const MAX_LIMIT: i64 = 1000;
/// The `limit` when a keyset request names none.
pub const DEFAULT_LIMIT: i64 = 100;
/// Longest key a cursor carries, in bytes: the longest file path the API takes
/// (`ledger::MAX_PATH_BYTES`).
pub const MAX_KEY_BYTES: usize = 4096;

/// A page of a list read in its key's order: at most `limit` items, those after the key `after`
/// (from the first when `None`). Unlike a page number, a cursor neither skips nor repeats an item
/// when others are added or removed between two requests, and costs the same however deep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysetRequest {
    pub after: Option<String>,
    pub limit: i64,
}

impl KeysetRequest {
    /// Parses `cursor` (a previous page's `next_cursor`) and `limit` as a query string gives
    /// them; each problem names its field.
    pub fn parse(
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<KeysetRequest, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let after = match cursor.map(decode_cursor) {
            None => None,
            Some(Some(key)) => Some(key),
            Some(None) => {
                problems.push((
                    "cursor",
                    "cursor must be the next_cursor of a previous page, as it was given".to_owned(),
                ));
                None
            }
        };
        let limit = match limit.map(str::parse::<i64>) {
            None => DEFAULT_LIMIT,
            Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                problems.push((
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        };
        if problems.is_empty() {
            Ok(KeysetRequest { after, limit })
        } else {
            Err(problems)
        }
    }
}

/// The cursor of the page after the item with this key.
pub fn encode_cursor(key: &str) -> String {
    CURSOR.encode(key)
}

/// The key a cursor carries, if it is one [`encode_cursor`] could have made: base64url without
/// padding of a non-empty text of at most [`MAX_KEY_BYTES`] bytes, without NUL (which no key in
/// PostgreSQL holds).
fn decode_cursor(cursor: &str) -> Option<String> {
    if cursor.is_empty() || cursor.len() > MAX_KEY_BYTES.div_ceil(3) * 4 {
        return None;
    }
    let key = String::from_utf8(CURSOR.decode(cursor).ok()?).ok()?;
    (!key.is_empty() && key.len() <= MAX_KEY_BYTES && !key.contains('\0')).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_and_refuse_what_is_out_of_range() {
        assert_eq!(
            PageRequest::parse(None, None),
            Ok(PageRequest { page: 1, size: 50 })
        );
        assert_eq!(
            PageRequest::parse(Some("3"), Some("200")).map(PageRequest::offset),
            Ok(400)
        );
        let fields = |p, s| {
            PageRequest::parse(p, s)
                .expect_err("refused")
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(Some("0"), Some("201")), ["page", "page_size"]);
        assert_eq!(fields(Some("x"), None), ["page"]);
    }

    #[test]
    fn cursors_carry_their_key_and_nothing_else_is_one() {
        let key = "s3://bucket/a b/ü?x=1&y=2.json";
        let cursor = encode_cursor(key);
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(
            KeysetRequest::parse(Some(&cursor), Some("1000")),
            Ok(KeysetRequest {
                after: Some(key.to_owned()),
                limit: 1000
            })
        );
        assert_eq!(
            KeysetRequest::parse(None, None),
            Ok(KeysetRequest {
                after: None,
                limit: DEFAULT_LIMIT
            })
        );
        let fields = |c, l| {
            KeysetRequest::parse(c, l)
                .expect_err("refused")
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(Some("!"), Some("0")), ["cursor", "limit"]);
        assert_eq!(fields(None, Some("1001")), ["limit"]);
        assert_eq!(fields(None, Some("ten")), ["limit"]);
        assert_eq!(fields(Some(""), None), ["cursor"]);
        let nul = encode_cursor("a\0b");
        assert_eq!(fields(Some(&nul), None), ["cursor"]);
        let not_text = CURSOR.encode([0xff, 0xfe]);
        assert_eq!(fields(Some(&not_text), None), ["cursor"]);
        let too_long = encode_cursor(&"x".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(fields(Some(&too_long), None), ["cursor"]);
        let longest = encode_cursor(&"x".repeat(MAX_KEY_BYTES));
        assert!(KeysetRequest::parse(Some(&longest), None).is_ok());
    }
}
