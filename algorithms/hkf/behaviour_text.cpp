// Behaviour-to-text templates and the fusion prompt (see behaviour_text.h).
#include "algorithms/hkf/behaviour_text.h"

#include <algorithm>
#include <array>
#include <sstream>

#include "engine/error.h"

namespace nabla::hkf {

namespace ml = data::movielens;

std::string title_utf8(const std::string& latin1) {
  std::string out;
  for (unsigned char c : latin1) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

namespace {

const char* group_phrase(ml::Behaviour b) {
  switch (b) {
    case ml::Behaviour::order:
      return "Loved (rated 4-5)";
    case ml::Behaviour::click:
      return "Watched and found OK (rated 3)";
    case ml::Behaviour::exposure:
      return "Watched but disliked (rated 1-2)";
  }
  return "?";
}

std::string top_genres_line(const ml::MovieLens& data, const std::array<int64_t, ml::kNumGenres>& counts,
                            int64_t k) {
  std::vector<int> order;
  for (int g = 1; g < ml::kNumGenres; ++g)  // "unknown" is no genre
    if (counts[g] > 0) order.push_back(g);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[a] > counts[b]; });
  std::ostringstream s;
  for (int64_t i = 0; i < std::min<int64_t>(k, static_cast<int64_t>(order.size())); ++i)
    s << (i ? ", " : "") << data.genre_names[order[i]] << " (" << counts[order[i]] << ")";
  return order.empty() ? "none" : s.str();
}

}  // namespace

std::string behaviour_text(const ml::MovieLens& data, int32_t user, std::span<const ml::Rating> history,
                           const TextOptions& o) {
  NABLA_CHECK(user >= 1 && user <= data.num_users(), "behaviour_text: user ", user, " outside [1, ",
              data.num_users(), "]");
  NABLA_CHECK(o.max_events >= 1 && o.titles_per_group >= 0,
              "behaviour_text: expected max_events >= 1 and "
              "titles_per_group >= 0, got ",
              o.max_events, " and ", o.titles_per_group);
  for (size_t i = 1; i < history.size(); ++i)
    NABLA_CHECK(history[i - 1].time <= history[i].time, "behaviour_text: user ", user,
                ": the history is not sorted by time at event ", i);
  std::ostringstream s;
  const ml::User& u = data.users[user];
  if (o.profile && (u.age > 0 || !u.gender.empty() || !u.occupation.empty())) {  // ml-latest-small: none
    s << "User: " << u.age << "-year-old "
      << (u.gender == "F"   ? "woman"
          : u.gender == "M" ? "man"
                            : u.gender)
      << ", " << u.occupation << ".\n";
  }
  if (history.empty()) {
    s << "No movies rated yet.";
    return s.str();
  }
  const size_t first = history.size() > static_cast<size_t>(o.max_events) ? history.size() - o.max_events : 0;
  std::span<const ml::Rating> h = history.subspan(first);
  const int64_t ref = h.back().time;
  std::array<int64_t, ml::kNumGenres> watched{}, loved{};
  for (const ml::Rating& r : h) {
    NABLA_CHECK(r.item >= 1 && r.item <= data.num_items(), "behaviour_text: item ", r.item, " outside [1, ",
                data.num_items(), "]");
    for (int g : data.movies[r.item].genres) {
      ++watched[g];
      if (ml::behaviour_of(r.rating) == ml::Behaviour::order) ++loved[g];
    }
  }
  s << "History: " << h.size() << " movies rated.\n";
  s << "Most-watched genres: " << top_genres_line(data, watched, o.top_genres) << ".\n";
  s << "Favourite genres (rated 4-5): " << top_genres_line(data, loved, o.top_genres) << ".";
  for (ml::Behaviour b : {ml::Behaviour::order, ml::Behaviour::click, ml::Behaviour::exposure})
    for (ml::Scenario sc : {ml::Scenario::recent, ml::Scenario::earlier}) {
      std::vector<const ml::Rating*> group;
      for (auto it = h.rbegin(); it != h.rend(); ++it)  // most recent first
        if (ml::behaviour_of(it->rating) == b && ml::scenario_of(it->time, ref) == sc) group.push_back(&*it);
      if (group.empty()) continue;
      s << "\n"
        << group_phrase(b) << " " << group.size() << (group.size() == 1 ? " movie " : " movies ")
        << (sc == ml::Scenario::recent ? "in the last 30 days" : "earlier");
      const auto shown = std::min<size_t>(group.size(), static_cast<size_t>(o.titles_per_group));
      for (size_t i = 0; i < shown; ++i)
        s << (i ? "; " : ": ") << title_utf8(data.movies[group[i]->item].title);
      if (group.size() > shown) s << (shown ? "; and " : ": ") << group.size() - shown << " more";
      s << ".";
    }
  return s.str();
}

std::string fusion_prompt(const std::string& text) {
  return "Here is what a user did on a movie site, by kind of behaviour:\n\n" + text +
         "\n\nSummarise this user's movie tastes in one short paragraph (at most 80 words): favourite "
         "genres, "
         "decades and kinds of movies, what they dislike, and how their taste changed recently.";
}

}  // namespace nabla::hkf
