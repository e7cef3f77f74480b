// The 20 instruction templates of HKF stage 2 (see instructions.h).
#include "algorithms/hkf/instructions.h"

#include <algorithm>

#include "algorithms/hkf/behaviour_text.h"
#include "engine/error.h"
#include "engine/random.h"

namespace nabla::hkf {

namespace ml = data::movielens;

int first_genre(const ml::Movie& m) {
  for (int g : m.genres)
    if (g != 0) return g;
  return 0;
}

namespace {

const ml::Movie& movie(const TaskInput& in, int32_t item) { return in.ml->movies.at(item); }
const ml::Movie& target(const TaskInput& in) { return movie(in, in.target.item); }
std::string title(const TaskInput& in, int32_t item) { return title_utf8(movie(in, item).title); }
std::string genre_name(const TaskInput& in, int g) { return in.ml->genre_names.at(g); }
std::string yes_no(bool b) { return b ? "yes" : "no"; }

uint64_t draw(const TaskInput& in, uint64_t salt, int64_t i) {
  return philox_bits64(in.seed ^ salt,
                       (static_cast<uint64_t>(in.target.user) << 36) ^ static_cast<uint64_t>(in.target.time),
                       i);
}

// `n` distinct items, none in the history nor the target, drawn by (salt).
std::vector<int32_t> distractors(const TaskInput& in, int64_t n, uint64_t salt) {
  std::vector<int32_t> out;
  const int32_t m = in.ml->num_items();
  for (int64_t i = 0; static_cast<int64_t>(out.size()) < n && i < 100000; ++i) {
    const auto c = static_cast<int32_t>(1 + draw(in, salt, i) % static_cast<uint64_t>(m));
    bool bad = c == in.target.item || std::find(out.begin(), out.end(), c) != out.end();
    for (const ml::Rating& r : in.history) bad = bad || r.item == c;
    if (!bad) out.push_back(c);
  }
  return out;
}

// The target inserted among the distractors at a drawn position.
std::vector<std::string> options_with_target(const TaskInput& in, std::vector<std::string> others,
                                             const std::string& answer, uint64_t salt) {
  const auto at = static_cast<size_t>(draw(in, salt, 999) % (others.size() + 1));
  others.insert(others.begin() + static_cast<std::ptrdiff_t>(at), answer);
  return others;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

int asked_genre(const TaskInput& in) {
  const int g = first_genre(target(in));
  if (draw(in, 0x67656e72ull, 0) % 2 == 0 || g == 0) {
    int other = 1 + static_cast<int>(draw(in, 0x67656e72ull, 1) % (ml::kNumGenres - 1));
    return other;
  }
  return g;
}

std::string popularity_level(const TaskInput& in, int32_t item) {
  std::vector<int64_t> sorted(in.item_counts.begin() + 1, in.item_counts.end());
  std::sort(sorted.rbegin(), sorted.rend());
  const int64_t top100 = sorted.size() >= 100 ? sorted[99] : 0;
  const int64_t c = in.item_counts[item];
  if (c >= top100 && c > 0) return "blockbuster";
  return c >= 20 ? "mid-range" : "niche";
}

std::vector<Task> make_tasks() {
  std::vector<Task> t;
  auto add = [&](std::string name, std::function<std::string(const TaskInput&)> ins,
                 std::function<std::string(const TaskInput&)> out) {
    t.push_back({std::move(name), ins, out});
  };
  auto fixed = [](std::string s) { return [s](const TaskInput&) { return s; }; };
  add("next_movie", fixed("Which movie will this user rate next? Answer with its title."),
      [](const TaskInput& in) { return title(in, in.target.item); });
  add("next_genre",
      fixed("Which genre will the next movie this user rates belong to? Answer with one genre."),
      [](const TaskInput& in) { return genre_name(in, first_genre(target(in))); });
  add("next_genres", fixed("List every genre of the next movie this user will rate."),
      [](const TaskInput& in) {
        std::vector<std::string> g;
        for (int x : target(in).genres) g.push_back(genre_name(in, x));
        return join(g, ", ");
      });
  add("rating_level", fixed("Will the user rate their next movie low (1-2), medium (3) or high (4-5)?"),
      [](const TaskInput& in) {
        return std::string(in.target.rating >= 4 ? "high" : in.target.rating == 3 ? "medium" : "low");
      });
  add("next_rating", fixed("What rating from 1 to 5 will the user give the next movie they rate?"),
      [](const TaskInput& in) { return std::to_string(in.target.rating); });
  add("decade", fixed("From which decade is the next movie this user will rate?"), [](const TaskInput& in) {
    const int y = target(in).year;
    return y > 0 ? std::to_string(y / 10 * 10) + "s" : std::string("unknown");
  });
  add("release_year", fixed("In which year was the next movie this user will rate released?"),
      [](const TaskInput& in) {
        return target(in).year > 0 ? std::to_string(target(in).year) : std::string("unknown");
      });
  add("will_love", fixed("Will the user love (rate 4 or 5) the next movie they rate? Answer yes or no."),
      [](const TaskInput& in) { return yes_no(in.target.rating >= 4); });
  add("will_like", fixed("Will the user rate the next movie 3 or more? Answer yes or no."),
      [](const TaskInput& in) { return yes_no(in.target.rating >= 3); });
  add("new_release",
      fixed("Will the next movie this user rates be a new release (released that year or the year before)? "
            "Answer "
            "yes or no."),
      [](const TaskInput& in) {
        const int64_t rating_year = 1970 + in.target.time / 31556952;  // mean Gregorian year
        return yes_no(target(in).year > 0 && target(in).year >= rating_year - 1);
      });
  add("era", fixed("Will the next movie this user rates be a classic (released before 1980) or modern?"),
      [](const TaskInput& in) {
        return std::string(target(in).year > 0 && target(in).year < 1980 ? "classic" : "modern");
      });
  add(
      "genre_yes_no",
      [](const TaskInput& in) {
        return "Will the next movie this user rates be a " + genre_name(in, asked_genre(in)) +
               " movie? Answer yes or no.";
      },
      [](const TaskInput& in) {
        const auto& g = target(in).genres;
        return yes_no(std::find(g.begin(), g.end(), asked_genre(in)) != g.end());
      });
  auto pick = [](int64_t n, uint64_t salt) {
    return [n, salt](const TaskInput& in) {
      std::vector<std::string> others;
      for (int32_t c : distractors(in, n, salt)) others.push_back(title(in, c));
      return "Which of these movies will the user rate next: " +
             join(options_with_target(in, others, title(in, in.target.item), salt), " | ") +
             "? Answer with the title.";
    };
  };
  add("pick_of_two", pick(1, 0x74776full), [](const TaskInput& in) { return title(in, in.target.item); });
  add("pick_of_five", pick(4, 0x66697665ull), [](const TaskInput& in) { return title(in, in.target.item); });
  add(
      "pick_genre_of_four",
      [](const TaskInput& in) {
        const int g = first_genre(target(in));
        std::vector<std::string> others;
        for (int64_t i = 0; others.size() < 3 && i < 1000; ++i) {
          const int c = 1 + static_cast<int>(draw(in, 0x67346f66ull, i) % (ml::kNumGenres - 1));
          const std::string name = genre_name(in, c);
          if (c != g && std::find(others.begin(), others.end(), name) == others.end()) others.push_back(name);
        }
        return "Which of these genres will the next movie this user rates belong to: " +
               join(options_with_target(in, others, genre_name(in, g), 0x67346f66ull), " | ") + "?";
      },
      [](const TaskInput& in) { return genre_name(in, first_genre(target(in))); });
  add("popularity",
      fixed("Will the next movie this user rates be a blockbuster (among the 100 most rated), mid-range, or "
            "niche "
            "(rated by fewer than 20 users)?"),
      [](const TaskInput& in) { return popularity_level(in, in.target.item); });
  add("same_genre_as_last",
      fixed("Will the next movie this user rates share a genre with the last movie they rated? Answer yes or "
            "no."),
      [](const TaskInput& in) {
        if (in.history.empty()) return std::string("no");
        const auto& last = movie(in, in.history.back().item).genres;
        bool shared = false;
        for (int g : target(in).genres)
          shared = shared || std::find(last.begin(), last.end(), g) != last.end();
        return yes_no(shared);
      });
  add("genre_count", fixed("How many genres does the next movie this user rates have?"),
      [](const TaskInput& in) { return std::to_string(target(in).genres.size()); });
  add(
      "movie_given_genre",
      [](const TaskInput& in) {
        return "The next movie this user rates is a " + genre_name(in, first_genre(target(in))) +
               " movie. Which one? Answer with its title.";
      },
      [](const TaskInput& in) { return title(in, in.target.item); });
  add("within_a_day",
      fixed("Will the user rate their next movie within a day of their last rating? Answer yes or no."),
      [](const TaskInput& in) {
        return yes_no(!in.history.empty() && in.target.time - in.history.back().time <= 86400);
      });
  return t;
}

}  // namespace

const std::vector<Task>& tasks() {
  static const std::vector<Task> t = make_tasks();
  return t;
}

const Task& task(const std::string& name) {
  std::string names;
  for (const Task& t : tasks()) {
    if (t.name == name) return t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  fail("hkf: unknown task '", name, "'; expected one of ", names);
}

std::string user_message(const std::string& knowledge, const std::string& instruction) {
  return knowledge + "\n\nTask: " + instruction;
}

nlohmann::json chat_example(const std::string& knowledge, const std::string& instruction,
                            const std::string& output) {
  return {{"messages",
           {{{"role", "user"}, {"content", user_message(knowledge, instruction)}},
            {{"role", "assistant"}, {"content", output}}}}};
}

}  // namespace nabla::hkf
