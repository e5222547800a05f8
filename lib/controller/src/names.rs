//! [`sanitize_name`]: csi-lib-utils' name sanitizing, the one copy used for lease names,
//! holder identities and driver names in finalizers.

/// csi-lib-utils' leader-election `sanitizeName` and external-attacher's
/// `SanitizeDriverName` (the same rule): every character outside `[a-zA-Z0-9-]` becomes `-`,
/// and a name ending in `-` gets an `X` appended. Case is kept. (Upstream's leader election
/// panics on an empty name; this returns it empty, for the caller to reject.)
///
/// ```
/// use csi_controller::sanitize_name;
/// assert_eq!(sanitize_name("external-attacher-leader-hostpath.csi.k8s.io"),
///            "external-attacher-leader-hostpath-csi-k8s-io");
/// assert_eq!(sanitize_name("driver\\"), "driver-X");
/// ```
pub fn sanitize_name(name: &str) -> String {
    // Go's regexp matches per code point, so a multi-byte character becomes a single `-`.
    let mut sanitized: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if sanitized.ends_with('-') {
        sanitized.push('X');
    }
    sanitized
}
