//! Who must not be mailed, and why: the reasons an address is on an
//! organisation's suppression list, and which kind of mail each one
//! stops. Marketing mail stops for every reason; transactional mail (an
//! order's receipt, a password reset) bypasses unsubscribes and
//! complaints, which are about marketing, but never a hard bounce: the
//! address does not exist.

use crate::text_enum;

text_enum! {
    /// Why an address is suppressed.
    pub enum SuppressionReason {
        /// A permanent SMTP failure (5xx) or a hard bounce report.
        HardBounce = "hard_bounce",
        /// A soft bounce threshold reached (several in a row).
        SoftBounces = "soft_bounces",
        /// The recipient marked a message as spam (ARF report, provider webhook).
        Complaint = "complaint",
        /// The recipient unsubscribed (one-click, preference page, store).
        Unsubscribed = "unsubscribed",
        /// Added by the merchant.
        Manual = "manual",
        /// Imported from another system's suppression list.
        Imported = "imported",
    }
}

text_enum! {
    /// What a message is for, as suppression sees it.
    pub enum MailPurpose {
        Marketing = "marketing",
        Transactional = "transactional",
    }
}

impl SuppressionReason {
    /// Whether an address suppressed for this reason may not receive mail
    /// of `purpose`.
    pub fn blocks(self, purpose: MailPurpose) -> bool {
        match purpose {
            MailPurpose::Marketing => true,
            MailPurpose::Transactional => matches!(
                self,
                SuppressionReason::HardBounce | SuppressionReason::SoftBounces
            ),
        }
    }

    /// The reasons a merchant may add by hand or import (the others come
    /// from what happened to mail).
    pub fn addable_by_merchant(self) -> bool {
        matches!(
            self,
            SuppressionReason::Manual
                | SuppressionReason::Imported
                | SuppressionReason::Unsubscribed
                | SuppressionReason::HardBounce
                | SuppressionReason::Complaint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_mail_passes_unsubscribes_but_never_a_bounced_address() {
        use MailPurpose::*;
        use SuppressionReason::*;
        for reason in [
            HardBounce,
            SoftBounces,
            Complaint,
            Unsubscribed,
            Manual,
            Imported,
        ] {
            assert!(reason.blocks(Marketing), "{reason:?}");
        }
        assert!(HardBounce.blocks(Transactional));
        assert!(SoftBounces.blocks(Transactional));
        assert!(!Unsubscribed.blocks(Transactional));
        assert!(!Complaint.blocks(Transactional));
        assert!(!Manual.blocks(Transactional));
        assert_eq!("hard_bounce".parse::<SuppressionReason>(), Ok(HardBounce));
        assert!("bounced".parse::<SuppressionReason>().is_err());
    }
}
