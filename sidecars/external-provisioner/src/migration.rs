//! CSI migration in the provisioner: a driver that replaced an in-tree plugin also provisions
//! claims of that plugin's StorageClasses (kube-controller-manager hands them over with
//! `volume.kubernetes.io/storage-provisioner` or `pv.kubernetes.io/migrated-to` set to the
//! driver). The StorageClass is translated to the driver's parameters before `CreateVolume`, the
//! new PV is written back in the in-tree form, and an in-tree PV is translated to CSI before
//! `DeleteVolume` — upstream's use of csi-translation-lib.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::StorageClass;

/// The translations the provisioner uses (upstream's `ProvisionerCSITranslator`), behind a
/// trait so that tests can observe them as upstream's do with a mock.
pub trait ProvisionerTranslator: Send + Sync {
    /// An in-tree StorageClass in the driver's terms.
    fn translate_in_tree_storage_class_to_csi(
        &self,
        in_tree_plugin_name: &str,
        class: &StorageClass,
    ) -> Result<StorageClass, csi_translation::Error>;
    /// The in-tree PV a provisioned CSI PV stands for.
    fn translate_csi_pv_to_in_tree(
        &self,
        pv: &PersistentVolume,
    ) -> Result<PersistentVolume, csi_translation::Error>;
    /// Whether the PV has a migratable in-tree source.
    fn is_pv_migratable(&self, pv: &PersistentVolume) -> bool;
    /// The CSI PV of an in-tree PV.
    fn translate_in_tree_pv_to_csi(
        &self,
        pv: &PersistentVolume,
    ) -> Result<PersistentVolume, csi_translation::Error>;
}

/// The real translations (`csi-translation`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CsiTranslator;

impl ProvisionerTranslator for CsiTranslator {
    fn translate_in_tree_storage_class_to_csi(
        &self,
        in_tree_plugin_name: &str,
        class: &StorageClass,
    ) -> Result<StorageClass, csi_translation::Error> {
        csi_translation::translate_in_tree_storage_class_to_csi(in_tree_plugin_name, class)
    }

    fn translate_csi_pv_to_in_tree(
        &self,
        pv: &PersistentVolume,
    ) -> Result<PersistentVolume, csi_translation::Error> {
        csi_translation::translate_csi_pv_to_in_tree(pv)
    }

    fn is_pv_migratable(&self, pv: &PersistentVolume) -> bool {
        csi_translation::is_pv_migratable(pv)
    }

    fn translate_in_tree_pv_to_csi(
        &self,
        pv: &PersistentVolume,
    ) -> Result<PersistentVolume, csi_translation::Error> {
        csi_translation::translate_in_tree_pv_to_csi(pv)
    }
}

/// The migration a provisioner does: which in-tree plugin its driver replaced (upstream's
/// `supportsMigrationFromInTreePluginName`), and the translations.
#[derive(Clone)]
pub struct Migration {
    /// `kubernetes.io/gce-pd`, …
    pub in_tree_plugin_name: String,
    /// The translations.
    pub translator: Arc<dyn ProvisionerTranslator>,
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("in_tree_plugin_name", &self.in_tree_plugin_name)
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// The migration of `driver`, when it is the CSI driver of an in-tree plugin.
    pub fn for_driver(driver: &str) -> Option<Self> {
        let in_tree = csi_translation::get_in_tree_name_from_csi_name(driver).ok()?;
        Some(Self {
            in_tree_plugin_name: in_tree.to_owned(),
            translator: Arc::new(CsiTranslator),
        })
    }

    /// The class in the driver's terms when it is the in-tree plugin's (`None`: not migrated).
    pub fn translate_class(
        &self,
        class: &StorageClass,
    ) -> Option<Result<StorageClass, csi_translation::Error>> {
        (class.provisioner == self.in_tree_plugin_name).then(|| {
            self.translator
                .translate_in_tree_storage_class_to_csi(&self.in_tree_plugin_name, class)
        })
    }
}
