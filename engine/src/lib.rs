//! placeholder
#![forbid(unsafe_code)]

pub mod limits;
pub mod policy;
