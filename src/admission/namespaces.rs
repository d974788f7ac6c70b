//! Where the admission layer gets a namespace's defaults: the watched cache
//! in `serve --watch-namespaces`, fixed values in tests and `review`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::planner::NamespaceDefaults;

/// Where the admission layer gets a namespace's defaults.
pub trait NamespaceLookup: Send + Sync {
    /// The defaults the namespace's annotations set (none when unknown).
    fn defaults(&self, namespace: &str) -> NamespaceDefaults;
}

/// For tests and `review`: fixed defaults per namespace.
impl NamespaceLookup for HashMap<String, NamespaceDefaults> {
    fn defaults(&self, namespace: &str) -> NamespaceDefaults {
        self.get(namespace).copied().unwrap_or_default()
    }
}

/// A lookup shared by every request.
pub type SharedLookup = Arc<dyn NamespaceLookup>;
