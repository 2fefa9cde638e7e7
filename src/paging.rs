//! Which page of a list a request asks for.

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
}
