//! Paged lists: the `page` and `page_size` query parameters and the page that answers them.

use autoloader::paging::{PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiResult;

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items matching the request in all pages.
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
}

impl<T> Page<T> {
    pub fn new<R: Into<T>>(rows: Vec<R>, total: i64, request: PageRequest) -> Page<T> {
        Page {
            items: rows.into_iter().map(Into::into).collect(),
            total,
            page: request.page,
            page_size: request.size,
        }
    }
}

/// `page` and `page_size`, for the OpenAPI document of a paged list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// 1-based page number.
    #[param(minimum = 1, maximum = 9223372036854775807_i64, default = 1)]
    page: Option<i64>,
    /// Items per page.
    #[param(minimum = 1, maximum = 200, default = 50)]
    page_size: Option<i64>,
}

const _: () = assert!(MAX_PAGE_SIZE == 200 && DEFAULT_PAGE_SIZE == 50);

/// Parses `page` and `page_size` as the query string gave them.
pub fn parse(page: Option<&str>, page_size: Option<&str>) -> ApiResult<PageRequest> {
    Ok(PageRequest::parse(page, page_size)?)
}
