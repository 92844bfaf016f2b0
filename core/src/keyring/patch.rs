//! What the management HTTP API needs from the keyring beyond one change at a time: several
//! changes applied as one write (a `PATCH` is all or nothing), and reading users as an actor.
//!
//! Kept in its own module so the keyring's core stays as it is; it reuses the keyring's own
//! steps (live actor, visibility, guard, validation, version-checked write, audit).

use super::{actions, Actor, Change, Keyring, KeyringError, Subject, Target};
use crate::record::{KeyRecord, UserRecord};
use crate::time::Timestamp;

impl Keyring {
    /// Applies every change in `changes` to key `id` in one version-checked write: the guard
    /// is asked about each distinct action, judged on the record with every change applied,
    /// and nothing is written unless all are allowed and the result is valid. No change at
    /// all reads the key (`keys.read`).
    pub fn update_all(
        &self,
        actor: &Actor,
        id: &str,
        changes: Vec<Change>,
        now: Timestamp,
    ) -> Result<KeyRecord, KeyringError> {
        let mut acts: Vec<&'static str> = changes.iter().map(Change::action).collect();
        acts.sort_unstable();
        acts.dedup();
        let Some(&first) = acts.first() else { return self.get(actor, id, now) };
        let labels: Vec<&'static str> = changes.iter().map(Change::label).collect();
        let actor = &self.live_actor(actor, first, now)?;
        let (current, owner) = self.visible_key(actor, id, now)?;
        let mut next = current.clone();
        for c in changes {
            c.apply(&mut next);
        }
        next.version = current.version + 1;
        next.updated_at = now.max(current.updated_at);
        next.validate()?;
        self.guard.validate_key(&next)?;
        for action in &acts {
            let target = Target { key: Some(&next), user: next.kind.user(), owner: owner.as_ref() };
            self.guard(actor, action, target, now)?;
        }
        if let (Some(u), true) = (&owner, next.role != current.role) {
            self.guard.validate_personal(&next, u)?;
        }
        self.store.update_key(&next, current.version)?;
        self.event(
            actor,
            first,
            now,
            Subject { key: Some(id), user: next.kind.user(), version: Some(next.version) },
            "ok",
            labels.join(", "),
        );
        Ok(next)
    }

    /// A user as `actor` may see it: a key's own user, or a user the actor could save
    /// (`users.put` on the user as stored). A user beyond the actor's reach answers exactly
    /// like a missing one; an actor without `users.put` at all is refused.
    pub fn user_as(&self, actor: &Actor, id: &str, now: Timestamp) -> Result<UserRecord, KeyringError> {
        let actor = &self.live_actor(actor, actions::USERS_PUT, now)?;
        let user = self.store.get_user(id)?;
        if let (Actor::Key { user: Some(mine), .. }, Some(u)) = (actor, &user) {
            if mine.id == u.id {
                return Ok(u.clone());
            }
        }
        self.may_manage_users(actor, now)?;
        match user {
            Some(u) if self.can_manage_user(actor, &u, now) => Ok(u),
            _ => Err(KeyringError::NotFound(id.to_string())),
        }
    }

    /// The users `actor` may see (see [`Keyring::user_as`]), ordered by id.
    pub fn users_as(&self, actor: &Actor, now: Timestamp) -> Result<Vec<UserRecord>, KeyringError> {
        let actor = &self.live_actor(actor, actions::USERS_PUT, now)?;
        let own = match actor {
            Actor::Key { user: Some(u), .. } => Some(u.id.clone()),
            _ => None,
        };
        let all = self.store.list_users()?;
        let scope = Target { key: None, user: None, owner: None };
        if !self.guard.check(actor, actions::USERS_PUT, scope, now).allowed {
            return Ok(all.into_iter().filter(|u| Some(&u.id) == own.as_ref()).collect());
        }
        Ok(all.into_iter().filter(|u| Some(&u.id) == own.as_ref() || self.can_manage_user(actor, u, now)).collect())
    }

    /// `users.put` with no target: the actor's scopes alone.
    fn may_manage_users(&self, actor: &Actor, now: Timestamp) -> Result<(), KeyringError> {
        self.guard(actor, actions::USERS_PUT, Target { key: None, user: None, owner: None }, now)
    }

    fn can_manage_user(&self, actor: &Actor, user: &UserRecord, now: Timestamp) -> bool {
        let target = Target { key: None, user: Some(&user.id), owner: Some(user) };
        self.guard.check(actor, actions::USERS_PUT, target, now).allowed
    }
}
