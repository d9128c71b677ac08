//! The DataTables-style listings behind MultiScanner's Analyses (latest
//! task per sample) and History (every task) pages, with server-side
//! paging, sorting and search.

use std::collections::HashMap;

use axum::{Json, extract::State};
use multiscanner_proto::pb;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::common::{ApiQuery, status_name, time, truncate};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::{AppState, Caller},
};

/// Rows the search can page through (the report store's window).
const MAX_WINDOW: u32 = 10_000;
const MAX_LENGTH: u32 = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct DataTable {
    /// Echoes the request's `draw`.
    pub draw: u64,
    /// Rows without the search.
    #[serde(rename = "recordsTotal")]
    pub records_total: u64,
    /// Rows matching the search.
    #[serde(rename = "recordsFiltered")]
    pub records_filtered: u64,
    /// `[task_id, sample_id, task_status, timestamp]` per row.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub data: Vec<serde_json::Value>,
}

/// The DataTables request, as query parameters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters for the OpenAPI document.
pub struct DataTableParams {
    /// Echoed back.
    draw: Option<u64>,
    /// First row (0-based).
    start: Option<u32>,
    /// Rows per page (at most 1000; -1: 1000).
    length: Option<i32>,
    /// The search term.
    #[param(rename = "search[value]")]
    search_value: Option<String>,
    /// `default` (substring), `exact` or `advanced` (the store's query
    /// language).
    search_type: Option<String>,
    /// Column to sort on: 0 task id, 1 SHA-256, 2 status, 3 timestamp.
    #[param(rename = "order[0][column]")]
    order_column: Option<u32>,
    /// `asc` or `desc`.
    #[param(rename = "order[0][dir]")]
    order_dir: Option<String>,
}

fn number<T: std::str::FromStr>(p: &HashMap<String, String>, key: &str) -> ApiResult<Option<T>> {
    match p.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::field(key, format!("{:?} is not a valid number here", truncate(v)))
        }),
    }
}

fn query(p: &HashMap<String, String>, latest: bool) -> ApiResult<(u64, pb::SearchRequest)> {
    let draw = number::<u64>(p, "draw")?.unwrap_or(0);
    let start = number::<u32>(p, "start")?.unwrap_or(0);
    let length = match number::<i32>(p, "length")?.unwrap_or(10) {
        -1 => MAX_LENGTH,
        n if n >= 0 => (n as u32).min(MAX_LENGTH),
        n => return Err(ApiError::field("length", format!("{n} rows"))),
    };
    if start.saturating_add(length) > MAX_WINDOW {
        return Err(ApiError::field(
            "start",
            format!("start + length may not pass {MAX_WINDOW}"),
        ));
    }
    let kind = match p
        .get("search_type")
        .map(String::as_str)
        .unwrap_or("default")
    {
        "" | "default" => pb::SearchType::Default,
        "exact" => pb::SearchType::Exact,
        "advanced" => pb::SearchType::Advanced,
        other => {
            return Err(ApiError::field(
                "search_type",
                format!("{:?} is not default, exact or advanced", truncate(other)),
            ));
        }
    };
    let sort = match number::<u32>(p, "order[0][column]")? {
        None | Some(0) | Some(2) => pb::SortField::TaskId,
        Some(1) => pb::SortField::Sha256,
        Some(3) => pb::SortField::ScanTime,
        Some(n) => {
            return Err(ApiError::field(
                "order[0][column]",
                format!("no column {n}"),
            ));
        }
    };
    let ascending = match p.get("order[0][dir]").map(String::as_str) {
        None | Some("") | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::field(
                "order[0][dir]",
                format!("{:?} is neither asc nor desc", truncate(other)),
            ));
        }
    };
    Ok((
        draw,
        pb::SearchRequest {
            query: p.get("search[value]").cloned().unwrap_or_default(),
            r#type: kind as i32,
            latest_per_sample: latest,
            sha256: String::new(),
            sort: sort as i32,
            ascending,
            offset: start,
            page_size: length.max(1),
        },
    ))
}

async fn table(
    state: &AppState,
    caller: &Caller,
    p: &HashMap<String, String>,
    latest: bool,
) -> ApiResult<DataTable> {
    let (draw, request) = query(p, latest)?;
    let want_rows = number::<i32>(p, "length")?.unwrap_or(10) != 0;
    let total = if request.query.is_empty() {
        None
    } else {
        let all = pb::SearchRequest {
            query: String::new(),
            page_size: 1,
            offset: 0,
            ..request.clone()
        };
        Some(
            state
                .reports()
                .search(caller.request(all))
                .await?
                .into_inner()
                .total,
        )
    };
    let page = state
        .reports()
        .search(caller.request(request))
        .await
        .map_err(|e| ApiError::from(e).rename_field("query", "search[value]"))?
        .into_inner();
    let data = if want_rows { page.hits } else { Vec::new() }
        .into_iter()
        .map(|h| {
            serde_json::json!([
                h.task_id,
                h.sha256,
                status_name(h.status),
                time(h.scan_time.as_ref())
            ])
        })
        .collect();
    Ok(DataTable {
        draw,
        records_total: total.unwrap_or(page.total),
        records_filtered: page.total,
        data,
    })
}

/// The latest finished task of each sample matching the search.
#[utoipa::path(get, path = "/api/v2/tasks/_datatable", tag = "search",
    params(DataTableParams),
    responses((status = 200, body = DataTable),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn analyses(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<DataTable>> {
    Ok(Json(table(&state, &caller, &p, true).await?))
}

/// Every finished task matching the search.
#[utoipa::path(get, path = "/api/v2/tasks/_datatable/history", tag = "search",
    params(DataTableParams),
    responses((status = 200, body = DataTable),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<DataTable>> {
    Ok(Json(table(&state, &caller, &p, false).await?))
}
