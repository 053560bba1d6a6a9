//! In-context task for `bae entropy --by demonstrations` (being written).
