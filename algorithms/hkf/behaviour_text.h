// HKF stage 1 (Yin et al., RecSys '23, section 4 of ../shared/papers/vrgd-skd-sentiment-hkf.md): a user's
// heterogeneous behaviour turned into text by one template per behaviour type, and the prompt that asks a
// language model to fuse those texts into one description of the user (the "heterogeneous knowledge").
//
// Behaviour (data/movielens.h): each event is rendered once as its strongest kind; events are grouped by
// (kind, scenario) and each group has its own template, most recent titles first:
//   order    "Loved (rated 4-5) {n} movies {when}: T1; T2; ...; and {m} more."
//   click    "Watched and found OK (rated 3) {n} movies {when}: ..."
//   exposure "Watched but disliked (rated 1-2) {n} movies {when}: ..."
//   {when} = "in the last 30 days" (scenario recent) or "earlier" (scenario earlier); the scenario's
//   reference time is the history's last event.
// after a profile line "User: {age}-year-old {man|woman}, {occupation}.", "History: {n} movies rated." and
// the subject-level summary "Most-watched genres: G (n), ..." and "Favourite genres (rated 4-5): ..." (first,
// so that a cut at the end drops old titles, not the summary). The history is the user's `max_events` most
// recent events (the paper's cap of 300).
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "data/movielens.h"

namespace nabla::hkf {

struct TextOptions {
  int64_t max_events = 300;      // history cap (most recent kept)
  int64_t titles_per_group = 5;  // titles listed per (behaviour, scenario) group
  int64_t top_genres = 3;        // genres in each summary line
  bool profile = true;           // the demographic line
};

// `history` sorted by time (oldest first); may be empty ("No movies rated yet."). `user` indexes ml.users.
std::string behaviour_text(const data::movielens::MovieLens& ml, int32_t user,
                           std::span<const data::movielens::Rating> history, const TextOptions& options = {});

// The knowledge-fusion request's user message for one behaviour text.
std::string fusion_prompt(const std::string& behaviour_text);

// "Toy Story (1995)" (titles are Latin-1 in u.item: bytes >= 0x80 become UTF-8).
std::string title_utf8(const std::string& latin1);

}  // namespace nabla::hkf
