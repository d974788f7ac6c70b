//! The slow tests: a real `gracehook serve` process over real TLS — protocols,
//! certificate rotation, shutdown, load with flat memory, hostile clients.
//! Apart from the in-process tests so that those stay fast to run alone
//! (`cargo test --test it`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines,
    missing_docs
)]

#[path = "../common/mod.rs"]
mod common;

mod certificates;
mod held_slots;
mod reliability;
mod serve;
