//! wxgate's own routes: each takes what it needs from the domain and
//! answers, or returns an `HttpError` the app turns into the answer.

pub mod decrypt;
pub mod forward_auth;
pub mod login;
pub mod login_limit;
pub mod logout;
pub mod phone;
pub mod session_check;
pub mod web_login;
