//! Tokens from a generation slab: a slot index plus a generation, so a
//! token is never handed out twice while an event for it may be in flight.
//!
//! The token travels through the kernel in `epoll_event.data`. Events of
//! one `epoll_wait` are copied out together, and a handler earlier in the
//! batch may close a descriptor whose event is still further down the batch
//! (epoll(7), "Possible pitfalls", and chapter 10). If the slot were then
//! given to a new registration with the *same* token, that stale event would
//! reach the newcomer. So a slot's generation goes up each time it is freed:
//! the index is reused (the slab stays small), the token is not.

/// What `epoll_event.data` carries: `generation << 32 | index`, like mio's
/// `Token` but checked by the reactor, not by the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

impl Token {
    fn new(index: u32, generation: u32) -> Token {
        Token((u64::from(generation) << 32) | u64::from(index))
    }

    /// The slot in the slab.
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// How many times that slot had been freed when this token was made.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A vector of slots and a list of free ones.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` in a free slot (or a new one) and returns its token.
    pub fn insert(&mut self, value: T) -> Token {
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.value = Some(value);
                Token::new(index, slot.generation)
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 registrations");
                self.slots.push(Slot {
                    generation: 0,
                    value: Some(value),
                });
                Token::new(index, 0)
            }
        }
    }

    /// The value `token` was made for, or `None` if that slot was freed
    /// since (whatever lives in it now has another generation).
    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.value.as_mut()
    }

    /// Frees the slot of `token` and returns its value. The generation goes
    /// up, so every token made for the old value is stale from now on.
    pub fn remove(&mut self, token: Token) -> Option<T> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        let value = slot.value.take()?;
        // After 2^32 reuses of one slot a generation comes back; an event
        // would have to stay in flight for 4 billion registrations.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(token.index());
        Some(value)
    }

    /// Tokens of every live value.
    pub fn tokens(&self) -> Vec<Token> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.value.is_some())
            .map(|(index, slot)| Token::new(index as u32, slot.generation))
            .collect()
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_is_reused_with_a_new_generation() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index(), b.index(), "the slot is reused");
        assert_ne!(a, b, "but not the token");
        assert_eq!(slab.get_mut(a), None, "the old token finds nothing");
        assert_eq!(slab.remove(a), None, "and removes nothing");
        assert_eq!(slab.get_mut(b), Some(&mut "b"));
        assert_eq!(slab.len(), 1);
    }
}
