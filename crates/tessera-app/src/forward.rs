//! Forward-auth: whether a gateway may pass a request on to the protected API. The
//! route rules (core) say what the request's method and path need; the verifier says
//! whether the presented token has it. HTTP-free: the server turns the verdict into
//! 200 / 401 / 403 / 429.

use std::net::IpAddr;
use std::time::Duration;

use tessera_api_types::VerifyCode;
use tessera_core::RouteDecision;

use crate::verify::{IndexedToken, VerifyQuery};
use crate::{AppResult, Tessera};

/// The answer to a gateway.
#[derive(Debug, Clone)]
pub enum ForwardVerdict {
    /// Pass the request on; the token tells the upstream who is calling.
    Allowed(IndexedToken),
    /// No token, or one that is malformed, unknown, expired or disabled.
    Unauthenticated,
    /// A valid token without what the route needs, or a route nobody may use.
    Forbidden(ForbiddenReason),
    /// Too many requests: the token's rate limit, or this client's failures.
    RateLimited(Duration),
}

/// Why a valid token was refused, for the 403's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenReason {
    /// The token lacks the permission the route's rule names.
    MissingPermission,
    /// The token is bound to another project than the route's, or the route's rule
    /// names a project and the token is bound to none.
    WrongProject,
    /// No rule matches and the default is `deny`, or the path is not a plain one.
    RouteDenied,
}

impl ForbiddenReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingPermission => "missing_permission",
            Self::WrongProject => "wrong_project",
            Self::RouteDenied => "route_denied",
        }
    }
}

impl Tessera {
    /// Route rules whose permission names nothing in the catalog as it is now (a typo
    /// in `tessera.toml` would otherwise refuse every token on that route, silently).
    pub async fn route_rules_outside_catalog(&self) -> AppResult<Vec<String>> {
        let catalog = tessera_core::Catalog::new(&self.store.list_resources().await?);
        Ok(self
            .settings
            .forward_auth
            .permissions()
            .filter(|(_, permission)| catalog.kind_of(permission).is_none())
            .map(|(index, permission)| {
                format!(
                    "forward_auth.rules[{index}]: permission `{permission}` is not in the \
                     resource catalog, so no token passes that route"
                )
            })
            .collect())
    }

    /// Decides a request the gateway forwards: `token` as presented (`None` when the
    /// request carried none), the original `method` and `uri` (path and query).
    pub fn forward_auth(
        &self,
        token: Option<&str>,
        method: &str,
        uri: &str,
        client: Option<IpAddr>,
    ) -> AppResult<ForwardVerdict> {
        self.check_freshness()?;
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return Ok(ForwardVerdict::Unauthenticated);
        };
        let decision = self.settings.forward_auth.decide(method, uri);
        let (permission, project) = match decision {
            RouteDecision::Require {
                permission,
                project,
            } => (Some(permission), project),
            RouteDecision::AnyValidToken | RouteDecision::Deny => (None, None),
        };
        let query = VerifyQuery {
            token,
            permission,
            project,
        };
        let accepted = self.verifier.accept(query, client, self.clock.now());
        Ok(match accepted {
            // A route bound to a project needs a token of that project: an unbound
            // token, which verifies for any project, does not belong to it.
            Ok(token) if project.is_some() && token.project.as_deref() != project => {
                ForwardVerdict::Forbidden(ForbiddenReason::WrongProject)
            }
            Ok(_) if decision == RouteDecision::Deny => {
                ForwardVerdict::Forbidden(ForbiddenReason::RouteDenied)
            }
            Ok(token) => ForwardVerdict::Allowed(token),
            Err((VerifyCode::RateLimited, wait)) => {
                ForwardVerdict::RateLimited(wait.unwrap_or(Duration::from_secs(1)))
            }
            Err((VerifyCode::Forbidden, _)) => {
                ForwardVerdict::Forbidden(ForbiddenReason::MissingPermission)
            }
            Err((VerifyCode::WrongProject, _)) => {
                ForwardVerdict::Forbidden(ForbiddenReason::WrongProject)
            }
            Err(_) => ForwardVerdict::Unauthenticated,
        })
    }
}
