// MovieLens 100K reader, behaviour model and splits (see movielens.h).
#include "data/movielens.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>
#include <string_view>
#include <unordered_map>

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
    r.half_stars = 2 * r.rating;
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
    m.source_id = m.id;
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

// ---- ml-latest-small ----

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& name) {
  std::vector<CsvRecord> out;
  size_t p = 0;
  const size_t n = text.size();
  int64_t line = 1;
  while (p < n) {
    // one record
    if (text[p] == '\n' || (text[p] == '\r' && p + 1 < n && text[p + 1] == '\n')) {  // an empty line
      p += text[p] == '\r' ? 2 : 1;
      ++line;
      continue;
    }
    CsvRecord rec;
    rec.line = line;
    while (true) {  // one field
      std::string field;
      if (p < n && text[p] == '"') {
        const int64_t opened = line;
        ++p;
        while (true) {
          if (p >= n)
            fail("movielens: ", name, ":", opened, ": field ", rec.fields.size() + 1,
                 ": expected a closing '\"', got the end of the file");
          const char c = text[p];
          if (c == '"') {
            if (p + 1 < n && text[p + 1] == '"') {
              field += '"';
              p += 2;
              continue;
            }
            ++p;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++p;
        }
        if (p < n && text[p] != ',' && text[p] != '\n' &&
            !(text[p] == '\r' && p + 1 < n && text[p + 1] == '\n'))
          fail("movielens: ", name, ":", line, ": field ", rec.fields.size() + 1,
               ": expected ',' or the end of the line after a closing quote, got '", std::string(1, text[p]),
               "'");
      } else {
        while (p < n && text[p] != ',' && text[p] != '\n' &&
               !(text[p] == '\r' && p + 1 < n && text[p + 1] == '\n')) {
          if (text[p] == '"')
            fail("movielens: ", name, ":", line, ": field ", rec.fields.size() + 1,
                 ": expected a field in quotes to hold the '\"', got one inside an unquoted field");
          field += text[p++];
        }
      }
      rec.fields.push_back(std::move(field));
      if (p < n && text[p] == ',') {
        ++p;
        continue;
      }
      break;  // end of line or of the file
    }
    if (p < n) {
      p += text[p] == '\r' ? 2 : 1;
      ++line;
    }
    out.push_back(std::move(rec));
  }
  return out;
}

namespace {

void expect_header(const std::vector<CsvRecord>& rows, const std::vector<std::string>& want,
                   const std::string& name) {
  std::string w;
  for (auto& f : want) w += (w.empty() ? "" : ",") + f;
  NABLA_CHECK(!rows.empty(), "movielens: ", name, ": expected the header '", w, "', got an empty file");
  std::string got;
  for (auto& f : rows[0].fields) got += (got.empty() ? "" : ",") + f;
  NABLA_CHECK(rows[0].fields == want, "movielens: ", name, ":", rows[0].line, ": expected the header '", w,
              "', got '", got, "'");
}

void expect_fields(const CsvRecord& r, size_t k, const char* what, const std::string& name) {
  if (r.fields.size() != k)
    fail("movielens: ", name, ":", r.line, ": expected ", k, " comma-separated fields (", what, "), got ",
         r.fields.size());
}

int genre_index(std::string_view g) {
  if (g == "Children") return 4;
  if (g == "(no genres listed)") return 0;
  const auto& names = default_genre_names();
  for (int i = 1; i < kNumGenres; ++i)
    if (g == names[i]) return i;
  return -1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<Rating> parse_latest_ratings(const std::string& text, const std::string& name) {
  const auto rows = parse_csv(text, name);
  expect_header(rows, {"userId", "movieId", "rating", "timestamp"}, name);
  std::vector<Rating> out;
  out.reserve(rows.size());
  for (size_t i = 1; i < rows.size(); ++i) {
    const CsvRecord& r = rows[i];
    expect_fields(r, 4, "userId,movieId,rating,timestamp", name);
    Rating x;
    x.user = static_cast<int32_t>(to_int(r.fields[0], name, r.line, "userId"));
    x.item = static_cast<int32_t>(to_int(r.fields[1], name, r.line, "movieId"));
    x.time = to_int(r.fields[3], name, r.line, "timestamp");
    const std::string& st = r.fields[2];
    double stars = 0;
    auto [p, ec] = std::from_chars(st.data(), st.data() + st.size(), stars);
    if (ec != std::errc() || p != st.data() + st.size() || st.empty())
      fail("movielens: ", name, ":", r.line, ": field rating: expected a number, got '", st, "'");
    const double half = stars * 2;
    if (!(half >= 1 && half <= 10) || half != std::floor(half))
      fail("movielens: ", name, ":", r.line, ": field rating: expected 0.5..5 in steps of 0.5, got '", st,
           "'");
    x.half_stars = static_cast<int32_t>(half);
    x.rating = (x.half_stars + 1) / 2;  // rounded up: 0.5 -> 1, 3.5 -> 4
    NABLA_CHECK(x.user >= 1 && x.item >= 1, "movielens: ", name, ":", r.line, ": ids start at 1, got userId ",
                x.user, " movieId ", x.item);
    out.push_back(x);
  }
  return out;
}

LatestSmallMovies parse_latest_movies(const std::string& text, const std::string& name) {
  const auto rows = parse_csv(text, name);
  expect_header(rows, {"movieId", "title", "genres"}, name);
  LatestSmallMovies out;
  out.movies.resize(1);
  std::set<int32_t> ids;
  for (size_t i = 1; i < rows.size(); ++i) {
    const CsvRecord& r = rows[i];
    expect_fields(r, 3, "movieId,title,genres; a title with a comma must be in quotes", name);
    Movie m;
    m.id = static_cast<int32_t>(out.movies.size());
    m.source_id = static_cast<int32_t>(to_int(r.fields[0], name, r.line, "movieId"));
    NABLA_CHECK(m.source_id >= 1, "movielens: ", name, ":", r.line, ": field movieId: expected >= 1, got ",
                m.source_id);
    NABLA_CHECK(ids.insert(m.source_id).second, "movielens: ", name, ":", r.line, ": movieId ", m.source_id,
                " appears twice");
    m.title = std::string(trim(r.fields[1]));
    NABLA_CHECK(!m.title.empty(), "movielens: ", name, ":", r.line,
                ": field title: expected a title, got ''");
    m.year = year_of_title(m.title);
    std::set<int> g;
    for (auto part : split_fields(r.fields[2], '|')) {
      part = trim(part);
      if (part == "IMAX") {
        ++out.imax_dropped;
        continue;
      }
      const int k = genre_index(part);
      if (k < 0)
        fail("movielens: ", name, ":", r.line,
             ": field genres: expected '|'-separated MovieLens genres, got '", std::string(part), "'");
      g.insert(k);
    }
    if (g.size() > 1) g.erase(0);  // "unknown" only alone
    if (g.empty()) g.insert(0);
    m.genres.assign(g.begin(), g.end());
    out.movies.push_back(std::move(m));
  }
  return out;
}

MovieLens read_latest_small(const std::string& dir) {
  MovieLens ml;
  const std::string rp = dir + "/ratings.csv", mp = dir + "/movies.csv";
  LatestSmallMovies mv = parse_latest_movies(read_text(mp), mp);
  ml.movies = std::move(mv.movies);
  std::unordered_map<int32_t, int32_t> dense;
  for (size_t i = 1; i < ml.movies.size(); ++i) dense[ml.movies[i].source_id] = static_cast<int32_t>(i);
  ml.ratings = parse_latest_ratings(read_text(rp), rp);
  int32_t max_user = 0;
  for (size_t i = 0; i < ml.ratings.size(); ++i) {
    Rating& r = ml.ratings[i];
    auto it = dense.find(r.item);
    if (it == dense.end())
      fail("movielens: ", rp, ": rating ", i + 1, " (user ", r.user, "): movieId ", r.item, " is not in ",
           mp);
    r.item = it->second;
    max_user = std::max(max_user, r.user);
  }
  NABLA_CHECK(!ml.ratings.empty() && ml.num_items() > 0, "movielens: ", dir,
              ": expected ratings and movies, got ", ml.ratings.size(), " ratings and ", ml.num_items(),
              " movies");
  ml.users.resize(static_cast<size_t>(max_user) + 1);
  for (int32_t u = 0; u <= max_user; ++u) ml.users[u].id = u;
  ml.genre_names.assign(default_genre_names().begin(), default_genre_names().end());
  ml.occupations = {""};
  return ml;
}

MovieLens read_dataset(const std::string& dir) {
  if (std::filesystem::exists(dir + "/u.data")) return read_100k(dir);
  if (std::filesystem::exists(dir + "/ratings.csv")) return read_latest_small(dir);
  fail("movielens: ", dir,
       ": expected MovieLens 100K (u.data, u.user, u.item) or ml-latest-small "
       "(ratings.csv, movies.csv), got neither u.data nor ratings.csv");
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
