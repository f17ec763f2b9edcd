//! The recorded load that `ring plan --by-load` and `ring diff --by-load`
//! read: the JSON of the admin API's `GET /ring/load?service=S`, saved to a
//! file. What they use of it (other keys are ignored, so the file can be
//! saved as the proxy serves it):
//!
//! ```json
//! {"ranges": [{"after": "<32 hex>", "through": "<32 hex>", "requests": 1200}, ...],
//!  "keys": [{"hash": "<32 hex>", "requests": 800}, ...]}
//! ```
//!
//! `ranges` must tile the ring the load was recorded on, each once; `keys`
//! (optional) are hot keys, their requests counted in their range too.
//! Within a range, requests that no listed key explains are taken to be
//! spread evenly (see [`shardproxy_ring::load`]).

use serde::Deserialize;
use shardproxy_ring::load::{KeyLoad, RangeLoad, RecordedLoad};
use shardproxy_ring::Token;

use super::ToolError;

#[derive(Deserialize)]
struct LoadFile {
    ranges: Vec<RangeEntry>,
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct RangeEntry {
    after: String,
    through: String,
    requests: f64,
}

#[derive(Deserialize)]
struct KeyEntry {
    hash: String,
    requests: f64,
}

/// The load in `text`, the file `label`.
///
/// # Errors
///
/// [`ToolError::Load`]: not JSON of that shape, a token that is not hex,
/// or ranges that do not tile the ring.
pub fn parse(label: &str, text: &str) -> Result<RecordedLoad, ToolError> {
    let error = |reason: String| ToolError::Load {
        path: label.to_owned(),
        reason,
    };
    let file: LoadFile =
        serde_json::from_str(text).map_err(|failure| error(failure.to_string()))?;
    let token = |what: &str, text: &str| {
        text.parse::<Token>()
            .map_err(|failure| error(format!("{what} {text:?}: {failure}")))
    };
    let mut ranges = Vec::with_capacity(file.ranges.len());
    for range in &file.ranges {
        ranges.push(RangeLoad {
            after: token("after", &range.after)?,
            through: token("through", &range.through)?,
            requests: range.requests,
        });
    }
    let mut keys = Vec::with_capacity(file.keys.len());
    for key in &file.keys {
        keys.push(KeyLoad {
            position: token("hash", &key.hash)?,
            requests: key.requests,
        });
    }
    RecordedLoad::new(ranges, keys).map_err(|failure| error(failure.to_string()))
}
