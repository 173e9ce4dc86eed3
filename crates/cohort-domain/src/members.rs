//! Roles in an organisation and the rules about them: an owner manages
//! everything, other owners included; an admin manages the organisation's
//! data, admins and viewers; a viewer reads. An organisation always keeps
//! at least one owner. The store keeps memberships and applies
//! [`keeps_an_owner`] inside the transaction that changes one.

use crate::text_enum;

text_enum! {
    /// A member's role in one organisation.
    pub enum Role {
        Owner = "owner",
        Admin = "admin",
        Viewer = "viewer",
    }
}

impl Role {
    /// Whether this role may change the organisation's data and settings.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether this role may give, change or take away `target`.
    pub fn can_assign(self, target: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => target != Role::Owner,
            Role::Viewer => false,
        }
    }
}

/// Why a membership change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("an organisation keeps at least one owner")]
    LastOwner,
}

/// Whether a member whose role is `current` may become `next` (`None`:
/// leave the organisation) when it has `owners` owners, this member
/// included. Moved here from the store, which reads the counts and calls
/// this in the same transaction as the change, so two concurrent changes
/// cannot both pass it.
pub fn keeps_an_owner(
    current: Role,
    next: Option<Role>,
    owners: i64,
) -> Result<(), MembershipError> {
    let stops_being_owner = current == Role::Owner && next != Some(Role::Owner);
    if stops_being_owner && owners <= 1 {
        return Err(MembershipError::LastOwner);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_owner_stays() {
        assert!(keeps_an_owner(Role::Owner, Some(Role::Admin), 1).is_err());
        assert!(keeps_an_owner(Role::Owner, None, 1).is_err());
        assert!(keeps_an_owner(Role::Owner, Some(Role::Owner), 1).is_ok());
        assert!(keeps_an_owner(Role::Owner, None, 2).is_ok());
        assert!(keeps_an_owner(Role::Admin, None, 1).is_ok());
        assert!(keeps_an_owner(Role::Viewer, Some(Role::Admin), 0).is_ok());
    }

    #[test]
    fn admins_manage_everyone_but_owners() {
        assert!(Role::Admin.can_assign(Role::Viewer));
        assert!(!Role::Admin.can_assign(Role::Owner));
        assert!(!Role::Viewer.can_manage());
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}
