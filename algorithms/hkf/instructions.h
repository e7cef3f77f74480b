// HKF stage 2: the instruction dataset. Each example is (input = the user's knowledge text, instruction =
// one of 20 recommendation task templates, output = the task's label of the user's true next interaction),
// written as data/chat.h's JSONL ({"messages": [user, assistant]}) for `train_gpt --mode sft`:
//   user message      "{knowledge}\n\nTask: {instruction}"
//   assistant message "{output}"
// The paper's label is the next order; ours is the next rating event (any rating), so that the item task
// is MovieLens' usual leave-one-out target; tasks 4, 5, 8, 9 predict how the user will rate it.
//
// The 20 tasks (name: output), all functions of (history, target):
//   next_movie: title          next_genre: first genre      next_genres: all genres ("Comedy, Romance")
//   rating_level: low/medium/high   next_rating: 1..5       decade: "1990s"      release_year: "1996"
//   will_love: yes/no (>= 4)   will_like: yes/no (>= 3)     new_release: yes/no (released in the rating's
//   year or the year before)   era: classic (< 1980) / modern   genre_yes_no: yes/no for a genre that is the
//   target's with probability 1/2   pick_of_two / pick_of_five: the title among 1 / 4 distractors
//   pick_genre_of_four: the first genre among 3 distractors   popularity: blockbuster / mid-range / niche
//   (training counts: top 100 / >= 20 ratings / fewer)   same_genre_as_last: yes/no   genre_count: "2"
//   movie_given_genre: title, told its first genre   within_a_day: yes/no (rated within 24 h of the last)
// Random choices (distractors, the genre asked) are philox draws keyed by (seed, user, target time).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/movielens.h"

namespace nabla::hkf {

struct TaskInput {
  const data::movielens::MovieLens* ml = nullptr;
  std::span<const data::movielens::Rating> history;  // before the target, oldest first
  data::movielens::Rating target;
  std::span<const int64_t> item_counts;  // training ratings per item (popularity task), [0] unused
  uint64_t seed = 0;
};

struct Task {
  std::string name;
  std::function<std::string(const TaskInput&)> instruction, output;
};

// The 20 tasks, in the order above.
const std::vector<Task>& tasks();
// By name; throws listing the names.
const Task& task(const std::string& name);

// The movie's first genre other than "unknown" (or "unknown" when it has no other): the genre task's label.
int first_genre(const data::movielens::Movie& m);

std::string user_message(const std::string& knowledge, const std::string& instruction);
// {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, plus "user", "task" (ignored by
// train_gpt).
nlohmann::json chat_example(const std::string& knowledge, const std::string& instruction,
                            const std::string& output);

}  // namespace nabla::hkf
