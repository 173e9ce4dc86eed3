//! Reading a collect body: any content type, chunked or not, gzip or
//! deflate, with the size limit applied to the decompressed bytes so that a
//! gzip bomb is refused rather than inflated.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::ApiError;

pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("request body exceeds {limit} bytes"));
    let raw = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => return Err(ApiError::invalid("", "the request body could not be read")),
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let decoder: Box<dyn Read + '_> = match encoding.as_str() {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(&raw[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&raw[..])),
        other => {
            return Err(ApiError::invalid(
                "Content-Encoding",
                format!("Content-Encoding {other:?} is not supported; use gzip, deflate or none"),
            ))
        }
    };
    let mut inflated = Vec::with_capacity(raw.len() * 4);
    let read = decoder.take(limit as u64 + 1).read_to_end(&mut inflated);
    match read {
        Ok(n) if n > limit => Err(too_large()),
        Ok(_) => Ok(Bytes::from(inflated)),
        Err(_) => Err(ApiError::invalid(
            "Content-Encoding",
            format!("the body is not valid {encoding} data"),
        )),
    }
}
