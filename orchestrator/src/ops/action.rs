//! The permission table: every action an operation performs and the
//! permissions that allow it (any one of them). It is an exhaustive match,
//! so an action without a row does not compile; the API's route table and
//! the portal name actions, never permission strings.

use vessel_api::perm::Perm;

/// What a caller asks to do. One variant per operation, plus
/// `OthersVessels` for reaching past one's own vessels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ShowMe,
    ListKeys,
    AddKey,
    RemoveKey,
    ListVessels,
    CreateVessel,
    ShowVessel,
    KillVessel,
    ExtendVessel,
    KeepVessel,
    /// Seeing or acting on vessels that are not one's own.
    OthersVessels,
    ReadFleet,
    ReadMetrics,
    ReadEvents,
    DrainHost,
    UndrainHost,
    BotState,
    ReadAudit,
    ListUsers,
    SetUser,
    SetLimits,
    ReadLine,
    MoveToFront,
    ListLinks,
    LinkIdentity,
    UnlinkIdentity,
    HibernateVessel,
    WakeVessel,
}

impl Action {
    /// Every action, for the tests that walk the table.
    pub const EVERY: [Action; 28] = [
        Action::ShowMe,
        Action::ListKeys,
        Action::AddKey,
        Action::RemoveKey,
        Action::ListVessels,
        Action::CreateVessel,
        Action::ShowVessel,
        Action::KillVessel,
        Action::ExtendVessel,
        Action::KeepVessel,
        Action::OthersVessels,
        Action::ReadFleet,
        Action::ReadMetrics,
        Action::ReadEvents,
        Action::DrainHost,
        Action::UndrainHost,
        Action::BotState,
        Action::ReadAudit,
        Action::ListUsers,
        Action::SetUser,
        Action::SetLimits,
        Action::ReadLine,
        Action::MoveToFront,
        Action::ListLinks,
        Action::LinkIdentity,
        Action::UnlinkIdentity,
        Action::HibernateVessel,
        Action::WakeVessel,
    ];

    /// The permissions that allow it: any one of them.
    pub const fn perms(self) -> &'static [Perm] {
        use Perm::*;
        match self {
            Action::ShowMe | Action::ListKeys | Action::ListVessels | Action::ShowVessel => {
                &[VesselsRead]
            }
            Action::AddKey | Action::RemoveKey | Action::CreateVessel => &[VesselsCreate],
            // Your own with `vessels:create`; anyone's needs `OthersVessels`
            // too, which the operation checks against the target.
            Action::KillVessel
            | Action::ExtendVessel
            | Action::KeepVessel
            | Action::HibernateVessel
            | Action::WakeVessel => &[VesselsCreate, VesselsManageAny],
            Action::OthersVessels | Action::MoveToFront => &[VesselsManageAny],
            Action::ReadFleet | Action::ReadMetrics | Action::ReadLine => &[FleetRead],
            Action::ReadEvents => &[EventsRead],
            Action::DrainHost
            | Action::UndrainHost
            | Action::ListUsers
            | Action::SetUser
            | Action::SetLimits
            | Action::ListLinks
            | Action::LinkIdentity
            | Action::UnlinkIdentity => &[FleetManage],
            Action::BotState => &[BotState],
            Action::ReadAudit => &[AuditRead],
        }
    }

    /// The refusal's words: which permissions would have allowed it.
    pub fn needs(self) -> String {
        let names: Vec<&str> = self.perms().iter().map(|p| p.as_str()).collect();
        format!("this needs one of: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_allowed_by_something_and_listed_once() {
        for (i, a) in Action::EVERY.iter().enumerate() {
            assert!(!a.perms().is_empty(), "{a:?} has no permission");
            assert!(!Action::EVERY[..i].contains(a), "{a:?} listed twice");
        }
    }

    #[test]
    fn a_researcher_cannot_reach_others_or_manage_the_fleet() {
        let researcher: Vec<Perm> = vessel_api::perm::RESEARCHER
            .iter()
            .filter_map(|p| Perm::parse(p))
            .collect();
        let may = |a: Action| a.perms().iter().any(|p| researcher.contains(p));
        for a in [Action::CreateVessel, Action::KillVessel, Action::ReadFleet] {
            assert!(may(a), "{a:?}");
        }
        for a in [
            Action::OthersVessels,
            Action::MoveToFront,
            Action::DrainHost,
            Action::SetLimits,
            Action::ReadAudit,
            Action::ReadEvents,
            Action::BotState,
        ] {
            assert!(!may(a), "{a:?}");
        }
    }
}
