//! Cursor pagination: items ordered by id; the cursor is an opaque token for the last id of
//! the page (clients must not build it), so the order can never skip or repeat an item even
//! when keys are added or removed between pages.

use super::answer::{code, ApiError};
use super::fields::{DEFAULT_LIMIT, MAX_LIMIT};
use base64ct::{Base64UrlUnpadded, Encoding};

const TAG: &str = "after:";

/// The id a cursor continues after (`None`: from the start).
pub fn after(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(c) = cursor else { return Ok(None) };
    let bad = || ApiError::field(400, code::INVALID_PARAMETER, "cursor", "the cursor is not one this API gave");
    let bytes = Base64UrlUnpadded::decode_vec(c).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(TAG).filter(|id| !id.is_empty()).map(|id| Some(id.to_string())).ok_or_else(bad)
}

/// The cursor continuing after `id`.
pub fn cursor(id: &str) -> String {
    Base64UrlUnpadded::encode_string(format!("{TAG}{id}").as_bytes())
}

/// The first `limit` items and, when more follow, the cursor for the next page.
pub fn take<T>(
    items: impl Iterator<Item = T>,
    limit: Option<u32>,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit.map_or(DEFAULT_LIMIT, |l| (l as usize).clamp(1, MAX_LIMIT));
    let mut items = items.take(limit + 1).collect::<Vec<T>>();
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|t| cursor(&id(t)));
        return (items, next);
    }
    (items, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(after(Some(&cursor("kc_x"))).unwrap().as_deref(), Some("kc_x"));
        for bad in ["kc_x", "!!", &Base64UrlUnpadded::encode_string(b"after:")] {
            assert_eq!(after(Some(bad)).unwrap_err().field.as_deref(), Some("cursor"));
        }
        let (page, next) = take(1..=5, Some(2), |n| n.to_string());
        assert_eq!((page, after(next.as_deref()).unwrap().as_deref()), (vec![1, 2], Some("2")));
        let (page, next) = take(1..=2, Some(2), |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], None));
    }
}
