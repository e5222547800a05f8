//! csi-lib-utils' `accessmodes`: Kubernetes access modes to the CSI access mode a driver gets,
//! the one mapping the attacher, provisioner and resizer all use.

use std::collections::BTreeSet;

use csi_proto::csi::v1::volume_capability::access_mode::Mode;

/// csi-lib-utils' `accessmodes.ToCSIAccessMode`: Kubernetes access modes to a CSI access
/// mode. With `single_node_multi_writer` (the driver has `SINGLE_NODE_MULTI_WRITER`),
/// ReadWriteOnce is `SINGLE_NODE_MULTI_WRITER` and ReadWriteOncePod
/// `SINGLE_NODE_SINGLE_WRITER`; without, both are `SINGLE_NODE_WRITER`. ReadWriteMany wins over
/// everything but ReadWriteOncePod, which cannot be combined with anything.
pub fn to_csi_access_mode(
    modes: &[String],
    single_node_multi_writer: bool,
) -> Result<Mode, String> {
    let set: BTreeSet<&str> = modes.iter().map(String::as_str).collect();
    if set.contains("ReadWriteOncePod") {
        if set.len() > 1 {
            return Err("Kubernetes does not support use of ReadWriteOncePod with other access modes on the same PersistentVolume".into());
        }
        return Ok(if single_node_multi_writer {
            Mode::SingleNodeSingleWriter
        } else {
            Mode::SingleNodeWriter
        });
    }
    if set.contains("ReadWriteMany") {
        return Ok(Mode::MultiNodeMultiWriter);
    }
    let rox = set.contains("ReadOnlyMany");
    let rwo = set.contains("ReadWriteOnce");
    match (rox, rwo) {
        (true, true) => Err(
            "CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume"
                .into(),
        ),
        (true, false) => Ok(Mode::MultiNodeReaderOnly),
        (false, true) => Ok(if single_node_multi_writer {
            Mode::SingleNodeMultiWriter
        } else {
            Mode::SingleNodeWriter
        }),
        (false, false) => Err(format!(
            "unsupported AccessMode combination: [{}]",
            modes.join(" ")
        )),
    }
}
