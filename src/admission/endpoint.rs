//! Which URL path the API server called, and so which mode applies.

/// Which URL path the API server called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Endpoint {
    /// `/mutate`: enforce (unless `--dry-run`).
    #[value(name = "/mutate")]
    Mutate,
    /// `/audit`: report only.
    #[value(name = "/audit")]
    Audit,
}

impl Endpoint {
    /// Both paths, in the order metrics list them.
    pub const ALL: [Endpoint; 2] = [Endpoint::Audit, Endpoint::Mutate];

    /// The URL path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Mutate => "/mutate",
            Endpoint::Audit => "/audit",
        }
    }
}
