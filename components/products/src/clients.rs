//! What products asks of accounts, through `shop:accounts/sessions`: whether the caller of a
//! staff-only route still holds a token that stands. Anonymous catalogue reads never ask.

use crate::bindings::shop::accounts::sessions;

shop_guest::accounts_sessions!(Accounts, sessions::current);
