//! Names a subject and finds its rows in `history/`.

use anyhow::{Context, Result, anyhow};
use delink_decode::normalise_identifier;
use delink_keystore::subject_entity;
use delink_keystore::{Entity, EntityKey};
use delink_model::{Field, Scope, SubjectId};
use delink_policy::{Action, Plan};

/// A subject as an operator names it: an account, or an anonymous RFID tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectRef {
    /// `user.account_id`.
    Account(String),
    /// `user.rfid` of a tag not linked to an account.
    Rfid(String),
}

impl SubjectRef {
    /// Normalises the identifier the way the decoder does.
    pub fn normalised(&self) -> Self {
        match self {
            SubjectRef::Account(id) => SubjectRef::Account(
                normalise_identifier(Field::UserAccountId, id).unwrap_or_default(),
            ),
            SubjectRef::Rfid(tag) => {
                SubjectRef::Rfid(normalise_identifier(Field::UserRfid, tag).unwrap_or_default())
            }
        }
    }

    fn field(&self) -> Field {
        match self {
            SubjectRef::Account(_) => Field::UserAccountId,
            SubjectRef::Rfid(_) => Field::UserRfid,
        }
    }

    pub(crate) fn id(&self) -> &str {
        match self {
            SubjectRef::Account(id) | SubjectRef::Rfid(id) => id,
        }
    }

    /// Returns the key-store identifier of the (normalised) subject.
    pub(crate) fn entity_id(&self) -> String {
        match self {
            SubjectRef::Account(id) => subject_entity(SubjectId::Account(id)),
            SubjectRef::Rfid(tag) => subject_entity(SubjectId::Rfid(tag)),
        }
    }

    /// Names the subject's key-store entity; `entity_id` must outlive it.
    pub(crate) fn entity(entity_id: &str) -> Entity<'_> {
        Entity::new(Scope::Subject, entity_id)
    }
}

/// The `history/` column that identifies a subject's rows, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubjectColumn {
    /// The column name.
    pub(crate) column: String,
    /// The subject's pseudonym in it.
    pub(crate) pseudonym: String,
}

/// Computes the pseudonym that marks a (normalised) subject's rows, under its key.
pub(crate) fn subject_column(
    plan: &Plan,
    subject: &SubjectRef,
    key: &EntityKey,
) -> Result<SubjectColumn> {
    let field = subject.field();
    let column = plan
        .history
        .columns
        .iter()
        .find(|column| column.field == field)
        .with_context(|| format!("the policy writes no history column for {}", field.path()))?;
    let Action::Pseudonymise {
        scope: Scope::Subject,
        context,
    } = &column.action
    else {
        return Err(anyhow!(
            "the policy does not pseudonymise {} under the subject key; cannot find a subject's rows",
            field.path()
        ));
    };
    Ok(SubjectColumn {
        column: column.name.clone(),
        pseudonym: delink_transform::pseudonym_hex(key.expose(), context, subject.id()),
    })
}
