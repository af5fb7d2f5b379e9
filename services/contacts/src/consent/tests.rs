use super::State::*;
use super::*;

#[test]
fn a_withdrawal_always_applies_once() {
    for current in [None, Some(Granted), Some(Pending)] {
        assert_eq!(
            next(current, Kind::Withdraw),
            Some(Withdrawn),
            "over {current:?}"
        );
    }
    assert_eq!(next(Some(Withdrawn), Kind::Withdraw), None);
}

#[test]
fn a_grant_over_a_withdrawal_waits_for_confirmation() {
    assert_eq!(next(None, Kind::Grant), Some(Granted));
    assert_eq!(next(Some(Withdrawn), Kind::Grant), Some(Pending));
    assert_eq!(next(Some(Granted), Kind::Grant), None);
    assert_eq!(next(Some(Pending), Kind::Grant), None);
}

#[test]
fn an_import_never_regrants_nor_asks_for_confirmation() {
    assert_eq!(next(None, Kind::ImportGrant), Some(Granted));
    assert_eq!(next(Some(Withdrawn), Kind::ImportGrant), None);
    assert_eq!(next(Some(Pending), Kind::ImportGrant), None);
}

#[test]
fn only_a_pending_request_is_confirmed() {
    assert_eq!(next(None, Kind::Request), Some(Pending));
    assert_eq!(next(Some(Withdrawn), Kind::Request), Some(Pending));
    assert_eq!(next(Some(Granted), Kind::Request), None);
    assert_eq!(next(Some(Pending), Kind::Confirm), Some(Granted));
    for current in [None, Some(Granted), Some(Withdrawn)] {
        assert_eq!(next(current, Kind::Confirm), None, "over {current:?}");
    }
}

#[test]
fn names_read_back_as_the_same_values() {
    for channel in Channel::ALL {
        assert_eq!(Channel::parse(channel.as_str()), Some(channel));
    }
    for basis in LegalBasis::ALL {
        assert_eq!(LegalBasis::parse(basis.as_str()), Some(basis));
        assert_eq!(LegalBasis::from_proto(basis.to_proto() as i32), Some(basis));
    }
    assert_eq!(purpose(" newsletter "), Some("newsletter"));
    assert_eq!(purpose("marketing"), None);
    assert_eq!(Channel::parse("fax"), None);
}
