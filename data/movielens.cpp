// MovieLens 100K reader, behaviour model and splits (see movielens.h).
#include "data/movielens.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>
#include <string_view>

#include "data/file_bytes.h"
#include "engine/error.h"
#include "engine/random.h"

namespace nabla::data::movielens {
namespace {

std::vector<std::string_view> split_fields(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t p = line.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, p - start));
    start = p + 1;
  }
}

template <class Fn>
void for_each_line(const std::string& text, Fn&& fn) {
  size_t start = 0;
  int64_t line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    if (!line.empty()) fn(line, line_no);
    start = end + 1;
  }
}

int64_t to_int(std::string_view s, const std::string& name, int64_t line, const char* field) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    fail("movielens: ", name, ":", line, ": field ", field, ": expected an integer, got '", std::string(s),
         "'");
  return v;
}

std::string read_text(const std::string& path) {
  FileBytes f = read_file_bytes(path, "movielens");
  return std::string(f.bytes.begin(), f.bytes.end());
}

// "01-Jan-1995" -> 1995; "" -> 0.
int32_t year_of_date(std::string_view d) {
  if (d.size() < 4) return 0;
  int32_t y = 0;
  auto [p, ec] = std::from_chars(d.data() + d.size() - 4, d.data() + d.size(), y);
  return ec == std::errc() && p == d.data() + d.size() ? y : 0;
}

// "Toy Story (1995)" -> 1995; 0 when absent.
int32_t year_of_title(std::string_view t) {
  const size_t open = t.rfind('(');
  if (open == std::string_view::npos || open + 6 > t.size() || t[open + 5] != ')') return 0;
  int32_t y = 0;
  auto [p, ec] = std::from_chars(t.data() + open + 1, t.data() + open + 5, y);
  return ec == std::errc() && p == t.data() + open + 5 ? y : 0;
}

}  // namespace

const std::array<const char*, kNumGenres>& default_genre_names() {
  static const std::array<const char*, kNumGenres> names{
      "unknown",     "Action", "Adventure", "Animation", "Children's", "Comedy",  "Crime",
      "Documentary", "Drama",  "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
      "Romance",     "Sci-Fi", "Thriller",  "War",       "Western"};
  return names;
}

std::vector<Rating> parse_ratings(const std::string& text, const std::string& name) {
  std::vector<Rating> out;
  for_each_line(text, [&](std::string_view line, int64_t n) {
    auto f = split_fields(line, '\t');
    if (f.size() != 4)
      fail("movielens: ", name, ":", n, ": expected 4 tab-separated fields (user, item, rating, time), got ",
           f.size());
    Rating r;
    r.user = static_cast<int32_t>(to_int(f[0], name, n, "user"));
    r.item = static_cast<int32_t>(to_int(f[1], name, n, "item"));
    r.rating = static_cast<int32_t>(to_int(f[2], name, n, "rating"));
    r.time = to_int(f[3], name, n, "time");
    NABLA_CHECK(r.user >= 1 && r.item >= 1, "movielens: ", name, ":", n, ": ids start at 1, got user ",
                r.user, " item ", r.item);
    NABLA_CHECK(r.rating >= 1 && r.rating <= 5, "movielens: ", name, ":", n, ": expected a rating 1..5, got ",
                r.rating);
    out.push_back(r);
  });
  return out;
}

std::vector<User> parse_users(const std::string& text, const std::string& name) {
  std::vector<User> out(1);
  for_each_line(text, [&](std::string_view line, int64_t n) {
    auto f = split_fields(line, '|');
    if (f.size() != 5)
      fail("movielens: ", name, ":", n,
           ": expected 5 '|'-separated fields (id|age|gender|occupation|zip), got ", f.size());
    User u;
    u.id = static_cast<int32_t>(to_int(f[0], name, n, "id"));
    u.age = static_cast<int32_t>(to_int(f[1], name, n, "age"));
    NABLA_CHECK(u.id == static_cast<int32_t>(out.size()), "movielens: ", name, ":", n, ": expected user id ",
                out.size(), " (ids in order from 1), got ", u.id);
    u.gender = std::string(f[2]), u.occupation = std::string(f[3]), u.zip = std::string(f[4]);
    out.push_back(std::move(u));
  });
  return out;
}

std::vector<Movie> parse_items(const std::string& text, const std::string& name) {
  std::vector<Movie> out(1);
  for_each_line(text, [&](std::string_view line, int64_t n) {
    auto f = split_fields(line, '|');
    if (f.size() != 5 + kNumGenres)
      fail("movielens: ", name, ":", n, ": expected ", 5 + kNumGenres,
           " '|'-separated fields (id|title|release|video release|url|19 genre flags), got ", f.size());
    Movie m;
    m.id = static_cast<int32_t>(to_int(f[0], name, n, "id"));
    NABLA_CHECK(m.id == static_cast<int32_t>(out.size()), "movielens: ", name, ":", n, ": expected item id ",
                out.size(), " (ids in order from 1), got ", m.id);
    m.title = std::string(f[1]);
    m.year = year_of_date(f[2]);
    if (m.year == 0) m.year = year_of_title(f[1]);
    for (int g = 0; g < kNumGenres; ++g) {
      const int64_t flag = to_int(f[5 + g], name, n, "genre flag");
      NABLA_CHECK(flag == 0 || flag == 1, "movielens: ", name, ":", n, ": genre flag ", g,
                  ": expected 0 or 1, got ", flag);
      if (flag) m.genres.push_back(g);
    }
    out.push_back(std::move(m));
  });
  return out;
}

MovieLens read_100k(const std::string& dir) {
  MovieLens ml;
  ml.ratings = parse_ratings(read_text(dir + "/u.data"), dir + "/u.data");
  ml.users = parse_users(read_text(dir + "/u.user"), dir + "/u.user");
  ml.movies = parse_items(read_text(dir + "/u.item"), dir + "/u.item");
  ml.genre_names.assign(default_genre_names().begin(), default_genre_names().end());
  if (std::filesystem::exists(dir + "/u.genre")) {
    const std::string path = dir + "/u.genre";
    for_each_line(read_text(path), [&](std::string_view line, int64_t n) {
      auto f = split_fields(line, '|');
      if (f.size() != 2)
        fail("movielens: ", path, ":", n, ": expected name|index, got ", f.size(), " fields");
      const int64_t g = to_int(f[1], path, n, "index");
      NABLA_CHECK(g >= 0 && g < kNumGenres, "movielens: ", path, ":", n, ": genre index ", g, " outside [0, ",
                  kNumGenres, ")");
      ml.genre_names[g] = std::string(f[0]);
    });
  }
  NABLA_CHECK(ml.num_users() > 0 && ml.num_items() > 0 && !ml.ratings.empty(), "movielens: ", dir,
              ": expected users, items and ratings, got ", ml.num_users(), " users, ", ml.num_items(),
              " items, ", ml.ratings.size(), " ratings");
  for (size_t i = 0; i < ml.ratings.size(); ++i) {
    const Rating& r = ml.ratings[i];
    NABLA_CHECK(r.user <= ml.num_users(), "movielens: ", dir, "/u.data:", i + 1, ": user ", r.user,
                " is not in u.user (", ml.num_users(), " users)");
    NABLA_CHECK(r.item <= ml.num_items(), "movielens: ", dir, "/u.data:", i + 1, ": item ", r.item,
                " is not in u.item (", ml.num_items(), " items)");
  }
  std::set<std::string> occ;
  for (size_t u = 1; u < ml.users.size(); ++u) occ.insert(ml.users[u].occupation);
  ml.occupations.assign(occ.begin(), occ.end());
  return ml;
}

const char* behaviour_name(Behaviour b) {
  switch (b) {
    case Behaviour::exposure:
      return "exposure";
    case Behaviour::click:
      return "click";
    case Behaviour::order:
      return "order";
  }
  return "?";
}

Behaviour behaviour_of(int32_t rating) {
  if (rating >= 4) return Behaviour::order;
  if (rating >= 3) return Behaviour::click;
  return Behaviour::exposure;
}

Scenario scenario_of(int64_t time, int64_t cutoff_time) {
  return cutoff_time - time <= kRecentSeconds ? Scenario::recent : Scenario::earlier;
}

const char* scenario_name(Scenario s) { return s == Scenario::recent ? "recent" : "earlier"; }

Split leave_last_out(const MovieLens& ml, int64_t min_train) {
  std::vector<std::vector<Rating>> per_user(ml.users.size());
  for (const Rating& r : ml.ratings) per_user[r.user].push_back(r);
  Split s;
  for (size_t u = 1; u < per_user.size(); ++u) {
    auto& ev = per_user[u];
    if (ev.empty()) continue;
    std::sort(ev.begin(), ev.end(), [](const Rating& a, const Rating& b) {
      return a.time != b.time ? a.time < b.time : a.item < b.item;
    });
    UserSplit us;
    us.user = static_cast<int32_t>(u);
    us.test = ev.back();
    int64_t ties = 0;
    for (size_t i = 0; i + 1 < ev.size(); ++i) {
      if (ev[i].time < us.test.time)
        us.train.push_back(ev[i]);
      else
        ++ties;
    }
    if (static_cast<int64_t>(us.train.size()) < min_train) {
      ++s.dropped_users;
      continue;
    }
    s.dropped_ties += ties;
    s.users.push_back(std::move(us));
  }
  return s;
}

void make_cold_start(Split& split, double fraction, int64_t keep, uint64_t seed) {
  NABLA_CHECK(fraction >= 0 && fraction <= 1, "make_cold_start: expected a fraction in [0, 1], got ",
              fraction);
  NABLA_CHECK(keep >= 1, "make_cold_start: expected keep >= 1, got ", keep);
  const size_t n = split.users.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  // Fisher-Yates with philox draws keyed by the seed: the same users for the same seed everywhere.
  for (size_t i = n; i > 1; --i) {
    const size_t j = philox_bits64(seed, 0x636f6c64ull, static_cast<int64_t>(i)) % i;
    std::swap(order[i - 1], order[j]);
  }
  const auto cold = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  for (size_t c = 0; c < cold; ++c) {
    UserSplit& us = split.users[order[c]];
    us.cold = true;
    if (static_cast<int64_t>(us.train.size()) > keep) us.train.erase(us.train.begin(), us.train.end() - keep);
  }
}

std::vector<int64_t> train_item_counts(const Split& split, int32_t num_items) {
  std::vector<int64_t> c(num_items + 1, 0);
  for (const auto& us : split.users)
    for (const Rating& r : us.train) {
      NABLA_CHECK(r.item >= 1 && r.item <= num_items, "train_item_counts: item ", r.item, " outside [1, ",
                  num_items, "]");
      ++c[r.item];
    }
  return c;
}

}  // namespace nabla::data::movielens
