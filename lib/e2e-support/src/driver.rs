//! [`DriverProcess`]: a real CSI driver as a separate process — Kubernetes' own e2e mock CSI
//! driver, built by `cargo xtask tools` — and the gRPC calls it logged ([`DriverCall`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use csi_test_support::{ChildProcess, wait_for_path};

use crate::E2eEnv;
use crate::process::tail;

/// The driver name the e2e tests give the driver.
pub const DRIVER_NAME: &str = "csi-mock.e2e.csi.k8s.io";

/// How to start the driver.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// `--name`: the name `GetPluginInfo` reports. The mock driver also uses it as its node
    /// ID (NodeGetInfo), and publishes only to that node ID.
    pub driver_name: String,
    /// Whether the driver has the PUBLISH_UNPUBLISH_VOLUME capability.
    pub attach: bool,
    /// Anything else.
    pub extra_args: Vec<String>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            driver_name: DRIVER_NAME.to_string(),
            attach: true,
            extra_args: Vec::new(),
        }
    }
}

/// A real CSI driver, running as its own process on a socket in a temp dir.
#[derive(Debug)]
pub struct DriverProcess {
    process: Option<ChildProcess>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    binary: PathBuf,
    options: DriverOptions,
    /// What the processes before the current one logged (one per restart).
    earlier_logs: String,
}

impl DriverProcess {
    /// Starts the driver and waits for its socket.
    pub async fn start(env: &E2eEnv, options: DriverOptions) -> anyhow::Result<DriverProcess> {
        let dir = tempfile::tempdir()?;
        let mut driver = DriverProcess {
            process: None,
            socket: dir.path().join("csi.sock"),
            binary: env.driver.clone(),
            _dir: dir,
            options,
            earlier_logs: String::new(),
        };
        driver.launch().await?;
        Ok(driver)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut args = vec![
            format!("--endpoint={}", self.socket.display()),
            format!("--name={}", self.options.driver_name),
        ];
        if !self.options.attach {
            args.push("--disable-attach".to_string());
        }
        args.extend(self.options.extra_args.iter().cloned());
        let mut process = ChildProcess::spawn(&self.binary, &args)?;
        if let Err(err) = wait_for_path(&self.socket, Duration::from_secs(30)).await {
            bail!("{err:#}\ndriver output:\n{}", process.logs());
        }
        // The socket file alone does not say the driver serves: it stays behind a driver that
        // exited after listening. Ready is a connection accepted; an exit ends the wait with
        // what the driver wrote.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match csi_test_support::unix_channel(&self.socket).await {
                Ok(_) => break,
                Err(err) if !process.is_running() || std::time::Instant::now() >= deadline => {
                    bail!(
                        "the driver does not serve on {}: {err:#}\ndriver output:\n{}",
                        self.socket.display(),
                        process.logs()
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.process = Some(process);
        Ok(())
    }

    /// The driver's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:///...` for `--csi-address`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The driver name it reports.
    pub fn driver_name(&self) -> &str {
        &self.options.driver_name
    }

    /// Kills it (SIGKILL), as a crashed driver; the socket file stays behind, as it would.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.signal("KILL")?;
            process.wait(Duration::from_secs(10)).await?;
            self.earlier_logs.push_str(&process.logs());
        }
        Ok(())
    }

    /// Starts it again on the same socket and state.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        let _ = std::fs::remove_file(&self.socket);
        self.launch().await
    }

    /// A connection to the driver; when none can be made, the error carries the tail of what
    /// the driver wrote (a driver that exited leaves its socket file behind).
    async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        csi_test_support::unix_channel(&self.socket)
            .await
            .map_err(|err| {
                err.context(format!(
                    "the driver's last output:\n{}",
                    tail(&self.logs(), 20)
                ))
            })
    }

    /// What every process of it logged since the first start, restarts included.
    pub fn all_logs(&self) -> String {
        format!("{}{}", self.earlier_logs, self.logs())
    }

    /// What the current process logged.
    pub fn logs(&self) -> String {
        self.process
            .as_ref()
            .map(ChildProcess::logs)
            .unwrap_or_default()
    }
}

/// One gRPC call the driver process logged (a `gRPCCall:` line on its stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverCall {
    /// The full method, `/csi.v1.Controller/ControllerPublishVolume`.
    pub method: String,
    /// The error it answered, empty on success.
    pub error: String,
    /// The request, as the driver logged it (JSON of the protobuf message).
    pub request: serde_json::Value,
    /// The response (`null` after an error).
    pub response: serde_json::Value,
}

impl DriverCall {
    /// The method's last path element, `ControllerPublishVolume`.
    pub fn short_method(&self) -> &str {
        self.method.rsplit('/').next().unwrap_or(&self.method)
    }
}

impl DriverProcess {
    /// Creates a volume named `name` in the driver (CreateVolume, single-node-writer mount
    /// capability) and returns its ID: the mock driver publishes only volumes it knows (its
    /// three built-in ones, `1` to `3`, and those created).
    pub async fn create_volume(&self, name: &str) -> anyhow::Result<String> {
        self.create_volume_of(name, 0).await
    }

    /// [`DriverProcess::create_volume`] of `bytes` bytes (0: the driver's default, 100 GiB).
    pub async fn create_volume_of(&self, name: &str, bytes: i64) -> anyhow::Result<String> {
        use csi_proto::csi::v1::CapacityRange;
        use csi_proto::csi::v1::controller_client::ControllerClient;
        use csi_proto::csi::v1::volume_capability::{
            AccessMode, AccessType, MountVolume, access_mode::Mode,
        };
        use csi_proto::csi::v1::{CreateVolumeRequest, VolumeCapability};

        let channel = self.channel().await?;
        let request = CreateVolumeRequest {
            name: name.to_string(),
            volume_capabilities: vec![VolumeCapability {
                access_mode: Some(AccessMode {
                    mode: Mode::SingleNodeWriter as i32,
                }),
                access_type: Some(AccessType::Mount(MountVolume::default())),
            }],
            capacity_range: (bytes > 0).then_some(CapacityRange {
                required_bytes: bytes,
                limit_bytes: 0,
            }),
            ..CreateVolumeRequest::default()
        };
        let response = ControllerClient::new(channel)
            .create_volume(request)
            .await
            .with_context(|| format!("CreateVolume {name:?}"))?
            .into_inner();
        let id = response
            .volume
            .map(|v| v.volume_id)
            .filter(|id| !id.is_empty())
            .with_context(|| format!("CreateVolume {name:?} returned no volume ID"))?;
        Ok(id)
    }

    /// Creates a snapshot named `name` of the volume `source_volume_id` (CreateSnapshot) and
    /// returns its ID and size in bytes.
    pub async fn create_snapshot(
        &self,
        name: &str,
        source_volume_id: &str,
    ) -> anyhow::Result<(String, i64)> {
        use csi_proto::csi::v1::CreateSnapshotRequest;
        use csi_proto::csi::v1::controller_client::ControllerClient;

        let channel = self.channel().await?;
        let snapshot = ControllerClient::new(channel)
            .create_snapshot(CreateSnapshotRequest {
                name: name.to_string(),
                source_volume_id: source_volume_id.to_string(),
                ..CreateSnapshotRequest::default()
            })
            .await
            .with_context(|| format!("CreateSnapshot {name:?}"))?
            .into_inner()
            .snapshot
            .with_context(|| format!("CreateSnapshot {name:?} returned no snapshot"))?;
        Ok((snapshot.snapshot_id, snapshot.size_bytes))
    }

    /// Expands the volume `volume_id` to `bytes` in the driver itself (ControllerExpandVolume),
    /// behind Kubernetes' back.
    pub async fn expand_volume(&self, volume_id: &str, bytes: i64) -> anyhow::Result<()> {
        use csi_proto::csi::v1::controller_client::ControllerClient;
        use csi_proto::csi::v1::{CapacityRange, ControllerExpandVolumeRequest};

        let channel = self.channel().await?;
        ControllerClient::new(channel)
            .controller_expand_volume(ControllerExpandVolumeRequest {
                volume_id: volume_id.to_string(),
                capacity_range: Some(CapacityRange {
                    required_bytes: bytes,
                    limit_bytes: 0,
                }),
                ..ControllerExpandVolumeRequest::default()
            })
            .await
            .with_context(|| format!("ControllerExpandVolume {volume_id:?}"))?;
        Ok(())
    }

    /// The IDs of every volume the driver has (`ListVolumes`, all pages), its three built-in
    /// ones included.
    pub async fn list_volumes(&self) -> anyhow::Result<Vec<String>> {
        use csi_proto::csi::v1::ListVolumesRequest;
        use csi_proto::csi::v1::controller_client::ControllerClient;

        let channel = self.channel().await?;
        let mut client = ControllerClient::new(channel);
        let mut ids = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_volumes(ListVolumesRequest {
                    max_entries: 0,
                    starting_token: token.clone(),
                })
                .await
                .context("ListVolumes")?
                .into_inner();
            ids.extend(
                page.entries
                    .into_iter()
                    .filter_map(|e| e.volume.map(|v| v.volume_id)),
            );
            if page.next_token.is_empty() {
                return Ok(ids);
            }
            token = page.next_token;
        }
    }

    /// The volumes the driver holds (ListVolumes), as `(volume ID, the name CreateVolume was
    /// given)`; the mock driver's three built-in volumes are named `Mock Volume 1` to `3`.
    pub async fn list_volume_names(&self) -> anyhow::Result<Vec<(String, String)>> {
        use csi_proto::csi::v1::ListVolumesRequest;
        use csi_proto::csi::v1::controller_client::ControllerClient;

        let channel = self.channel().await?;
        let mut client = ControllerClient::new(channel);
        let mut volumes = Vec::new();
        let mut token = String::new();
        loop {
            let response = client
                .list_volumes(ListVolumesRequest {
                    max_entries: 0,
                    starting_token: token,
                })
                .await
                .context("ListVolumes")?
                .into_inner();
            for entry in response.entries {
                if let Some(volume) = entry.volume {
                    let name = volume
                        .volume_context
                        .get("name")
                        .cloned()
                        .unwrap_or_default();
                    volumes.push((volume.volume_id, name));
                }
            }
            if response.next_token.is_empty() {
                return Ok(volumes);
            }
            token = response.next_token;
        }
    }

    /// Every snapshot the driver holds (`ListSnapshots`, all pages), as `(snapshot ID, source
    /// volume ID)`, sorted; the mock driver starts with three (`1` to `3`, of volumes `1` to
    /// `3`), and each member of a group snapshot is one of them too.
    pub async fn list_snapshots(&self) -> anyhow::Result<Vec<(String, String)>> {
        use csi_proto::csi::v1::ListSnapshotsRequest;
        use csi_proto::csi::v1::controller_client::ControllerClient;

        let channel = self.channel().await?;
        let mut client = ControllerClient::new(channel);
        let mut snapshots = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_snapshots(ListSnapshotsRequest {
                    starting_token: token,
                    ..ListSnapshotsRequest::default()
                })
                .await
                .context("ListSnapshots")?
                .into_inner();
            snapshots.extend(
                page.entries
                    .into_iter()
                    .filter_map(|e| e.snapshot)
                    .map(|s| (s.snapshot_id, s.source_volume_id)),
            );
            if page.next_token.is_empty() {
                snapshots.sort();
                return Ok(snapshots);
            }
            token = page.next_token;
        }
    }

    /// Creates a group snapshot named `name` of `volume_ids` (`CreateVolumeGroupSnapshot`; the
    /// driver must run with `--enable-group-snapshots`) and returns its ID and the IDs of its
    /// member snapshots, sorted.
    pub async fn create_group_snapshot(
        &self,
        name: &str,
        volume_ids: &[&str],
    ) -> anyhow::Result<(String, Vec<String>)> {
        use csi_proto::csi::v1::CreateVolumeGroupSnapshotRequest;
        use csi_proto::csi::v1::group_controller_client::GroupControllerClient;

        let channel = self.channel().await?;
        let group = GroupControllerClient::new(channel)
            .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest {
                name: name.to_string(),
                source_volume_ids: volume_ids.iter().map(ToString::to_string).collect(),
                ..CreateVolumeGroupSnapshotRequest::default()
            })
            .await
            .with_context(|| format!("CreateVolumeGroupSnapshot {name:?}"))?
            .into_inner()
            .group_snapshot
            .with_context(|| format!("CreateVolumeGroupSnapshot {name:?} returned no group"))?;
        let mut members: Vec<String> = group.snapshots.into_iter().map(|s| s.snapshot_id).collect();
        members.sort();
        Ok((group.group_snapshot_id, members))
    }

    /// Deletes the group snapshot `group_snapshot_id` (`DeleteVolumeGroupSnapshot`) with the
    /// member snapshot IDs `snapshot_ids` (empty: not given).
    pub async fn delete_group_snapshot(
        &self,
        group_snapshot_id: &str,
        snapshot_ids: &[String],
    ) -> anyhow::Result<()> {
        use csi_proto::csi::v1::DeleteVolumeGroupSnapshotRequest;
        use csi_proto::csi::v1::group_controller_client::GroupControllerClient;

        let channel = self.channel().await?;
        GroupControllerClient::new(channel)
            .delete_volume_group_snapshot(DeleteVolumeGroupSnapshotRequest {
                group_snapshot_id: group_snapshot_id.to_string(),
                snapshot_ids: snapshot_ids.to_vec(),
                ..DeleteVolumeGroupSnapshotRequest::default()
            })
            .await
            .with_context(|| format!("DeleteVolumeGroupSnapshot {group_snapshot_id:?}"))?;
        Ok(())
    }

    /// The group snapshot `group_snapshot_id` (`GetVolumeGroupSnapshot`; the driver must run
    /// with `--enable-group-snapshots`): `None` when the driver answers NotFound, else the IDs
    /// of its member snapshots, sorted.
    pub async fn get_group_snapshot(
        &self,
        group_snapshot_id: &str,
    ) -> anyhow::Result<Option<Vec<String>>> {
        use csi_proto::csi::v1::GetVolumeGroupSnapshotRequest;
        use csi_proto::csi::v1::group_controller_client::GroupControllerClient;

        let channel = self.channel().await?;
        let result = GroupControllerClient::new(channel)
            .get_volume_group_snapshot(GetVolumeGroupSnapshotRequest {
                group_snapshot_id: group_snapshot_id.to_string(),
                ..GetVolumeGroupSnapshotRequest::default()
            })
            .await;
        match result {
            Ok(response) => {
                let mut ids: Vec<String> = response
                    .into_inner()
                    .group_snapshot
                    .map(|g| g.snapshots.into_iter().map(|s| s.snapshot_id).collect())
                    .unwrap_or_default();
                ids.sort();
                Ok(Some(ids))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => {
                Err(status).with_context(|| format!("GetVolumeGroupSnapshot {group_snapshot_id:?}"))
            }
        }
    }

    /// The gRPC calls the current driver process logged so far, oldest first.
    pub fn grpc_calls(&self) -> Vec<DriverCall> {
        parse_calls(&self.logs())
    }

    /// The gRPC calls every driver process logged since the first start, oldest first.
    pub fn all_grpc_calls(&self) -> Vec<DriverCall> {
        parse_calls(&self.all_logs())
    }

    /// How many times `method` (short name, `ControllerPublishVolume`) was called.
    pub fn calls_to(&self, method: &str) -> usize {
        self.grpc_calls()
            .iter()
            .filter(|c| c.short_method() == method)
            .count()
    }
}

/// The `gRPCCall: {json}` lines of a driver log.
fn parse_calls(logs: &str) -> Vec<DriverCall> {
    logs.lines()
        .filter_map(|line| {
            let json = line.split_once("gRPCCall: ")?.1;
            let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
            Some(DriverCall {
                method: value["Method"].as_str()?.to_string(),
                error: value["Error"].as_str().unwrap_or_default().to_string(),
                request: value["Request"].clone(),
                response: value["Response"].clone(),
            })
        })
        .collect()
}
