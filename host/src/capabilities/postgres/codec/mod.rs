//! The guest's values in Postgres' binary format and back: parameters are encoded for the
//! types Postgres described for them, column values decoded by their column's type.

mod datetime;
mod decode;
mod encode;
mod numeric;
mod types;

pub(crate) use decode::{row_values, Kind};
pub(crate) use encode::bind;
