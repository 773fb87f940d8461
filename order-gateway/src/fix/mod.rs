//! FIX 4.4 venue adapter: a no-allocation codec, an initiator session and [`FixVenue`], the
//! [`Venue`](crate::venue::Venue) that sends hedge orders to a FIX counterparty.
pub mod codec;
