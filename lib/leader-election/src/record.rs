//! client-go's `LeaderElectionRecord`: the part of a Lease the election reads and writes, and its
//! conversions to and from `LeaseSpec` (resourcelock/leaselock.go).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

/// The election state stored in a Lease's spec. An absent field reads as Go's zero value; an
/// absent time is Go's zero time, which is written back as `null`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Record {
    pub holder_identity: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<MicroTime>,
    pub renew_time: Option<MicroTime>,
    pub leader_transitions: i32,
    pub strategy: String,
    pub preferred_holder: String,
}

/// What client-go compares to tell whether the record changed: the JSON of the record, in which
/// the times are `metav1.Time`, i.e. whole seconds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawRecord {
    holder_identity: String,
    lease_duration_seconds: i32,
    acquire_second: Option<i64>,
    renew_second: Option<i64>,
    leader_transitions: i32,
    strategy: String,
    preferred_holder: String,
}

impl Record {
    /// `LeaseSpecToLeaderElectionRecord`.
    pub fn from_lease(lease: &Lease) -> Record {
        let Some(spec) = &lease.spec else {
            return Record::default();
        };
        Record {
            holder_identity: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or_default(),
            acquire_time: spec.acquire_time.clone(),
            renew_time: spec.renew_time.clone(),
            leader_transitions: spec.lease_transitions.unwrap_or_default(),
            strategy: spec.strategy.clone().unwrap_or_default(),
            preferred_holder: spec.preferred_holder.clone().unwrap_or_default(),
        }
    }

    /// `LeaderElectionRecordToLeaseSpec`: holder, duration and transitions always written (an
    /// empty holder as `""`), strategy and preferred holder only when set.
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder_identity.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.clone(),
            renew_time: self.renew_time.clone(),
            lease_transitions: Some(self.leader_transitions),
            strategy: Some(self.strategy.clone()).filter(|s| !s.is_empty()),
            preferred_holder: Some(self.preferred_holder.clone()).filter(|s| !s.is_empty()),
        }
    }

    pub fn raw(&self) -> RawRecord {
        let second = |t: &Option<MicroTime>| t.as_ref().map(|t| t.0.as_second());
        RawRecord {
            holder_identity: self.holder_identity.clone(),
            lease_duration_seconds: self.lease_duration_seconds,
            acquire_second: second(&self.acquire_time),
            renew_second: second(&self.renew_time),
            leader_transitions: self.leader_transitions,
            strategy: self.strategy.clone(),
            preferred_holder: self.preferred_holder.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn round_trip_and_absent_fields() {
        let t = MicroTime(Timestamp::from_second(1_700_000_000).unwrap());
        let record = Record {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(t.clone()),
            renew_time: Some(t),
            leader_transitions: 3,
            ..Record::default()
        };
        let spec = record.to_spec();
        assert_eq!(spec.holder_identity.as_deref(), Some(""));
        assert_eq!(spec.strategy, None);
        assert_eq!(spec.preferred_holder, None);
        let lease = Lease {
            spec: Some(spec),
            ..Lease::default()
        };
        assert_eq!(Record::from_lease(&lease), record);
        assert_eq!(Record::from_lease(&Lease::default()), Record::default());
    }

    #[test]
    fn raw_record_ignores_sub_second_changes() {
        let at = |nanos: i32| Some(MicroTime(Timestamp::new(1_700_000_000, nanos).unwrap()));
        let a = Record {
            renew_time: at(1_000),
            ..Record::default()
        };
        let b = Record {
            renew_time: at(999_000_000),
            ..Record::default()
        };
        assert_eq!(a.raw(), b.raw());
        let c = Record {
            renew_time: Some(MicroTime(Timestamp::from_second(1_700_000_001).unwrap())),
            ..Record::default()
        };
        assert_ne!(a.raw(), c.raw());
    }
}
