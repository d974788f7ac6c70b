//! The command line (`docs/cli.md`): one small module per subcommand, the
//! flags they share ([`args`]) and their error ([`error`]). The only code
//! that prints or chooses an exit code; it may use every layer of the
//! library.

mod args;
mod audit;
mod audit_table;
mod certs;
mod cli;
mod drains;
mod error;
pub mod logging;
mod mutate;
mod observe;
mod policy;
mod process;
mod review;
mod serve;

pub use cli::{Cli, run};
