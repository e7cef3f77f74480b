// The ml-latest-small reader (data/movielens.h): RFC 4180 CSV records on crafted text (quoted commas, quotes,
// newlines, CRLF), the two files' mapping onto the MovieLens struct in a temporary folder, and bad rows that
// must name the file, the line and what was expected. The real files (scripts/movielens_latest_small.py) are
// checked only where ../shared/data/ml-latest-small exists.
#include <filesystem>
#include <fstream>
#include <random>

#include "algorithms/hkf/behaviour_text.h"
#include "data/movielens.h"
#include "testing.h"

namespace nabla::test {
namespace {

namespace ml = data::movielens;
namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR_HAS(expr, text) EXPECT_THAT_STR(error_of([&] { (void)(expr); }), text)
#define EXPECT_THAT_STR(got, text)                                  \
  do {                                                              \
    const std::string g_ = (got);                                   \
    EXPECT_NE(g_.find(text), std::string::npos) << "error: " << g_; \
  } while (0)

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("nabla_mls_" + std::to_string(next_seed()) + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  std::string str() const { return path.string(); }
};

TEST(MovieLensCsv, Rfc4180RecordsWithQuotesCommasAndNewlines) {
  const std::string text =
      "a,b,c\r\n"
      "1,\"Big, Fat \"\"Film\"\" (2001)\",x|y\n"
      "\n"
      "2,\"two\nlines\",\n"  // a newline inside quotes; an empty last field
      "3,,\"\"\n";           // empty unquoted and quoted fields, no CR
  const auto r = ml::parse_csv(text, "t.csv");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].fields, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r[1].fields, (std::vector<std::string>{"1", "Big, Fat \"Film\" (2001)", "x|y"}));
  EXPECT_EQ(r[2].fields, (std::vector<std::string>{"2", "two\nlines", ""}));
  EXPECT_EQ(r[3].fields, (std::vector<std::string>{"3", "", ""}));
  EXPECT_EQ(r[0].line, 1);
  EXPECT_EQ(r[1].line, 2);
  EXPECT_EQ(r[2].line, 4);  // after the empty line
  EXPECT_EQ(r[3].line, 6);  // the quoted newline counted
  // No final newline; a lone field.
  const auto s = ml::parse_csv("x", "t.csv");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].fields, (std::vector<std::string>{"x"}));
  EXPECT_TRUE(ml::parse_csv("", "t.csv").empty());
  // Malformed quoting.
  EXPECT_ERROR_HAS(ml::parse_csv("a,b\n1,\"open\n2,3\n", "q.csv"),
                   "q.csv:2: field 2: expected a closing '\"', got the end of the file");
  EXPECT_ERROR_HAS(ml::parse_csv("a,b\n1,ab\"c\n", "q.csv"), "q.csv:2: field 2: expected a field in quotes");
  EXPECT_ERROR_HAS(ml::parse_csv("a,b\n1,\"ab\"c\n", "q.csv"),
                   "q.csv:2: field 2: expected ',' or the end of the line after a closing quote, got 'c'");
}

const std::string kMovies =
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    "29,\"City of Lost Children, The (Cité des enfants perdus, La) (1995)\",Adventure|Drama|Sci-Fi\n"
    "50,\"Usual Suspects, The (1995) \",Crime|Mystery|Thriller|IMAX\n"
    "7000,No Year,(no genres listed)\n";

TEST(MovieLensCsv, ReadsCraftedFilesOntoTheMovieLensStruct) {
  TempDir d;
  d.write("movies.csv", kMovies);
  d.write("ratings.csv",
          "userId,movieId,rating,timestamp\r\n"
          "1,29,3.5,1000\r\n"
          "1,1,0.5,900\r\n"
          "3,50,5.0,1200\r\n"
          "3,7000,2.5,1100\r\n"
          "3,1,4,1300\r\n");
  const ml::MovieLens m = ml::read_dataset(d.str());
  ASSERT_EQ(m.num_items(), 4);
  EXPECT_EQ(m.num_users(), 3);  // users 1..the largest id; user 2 has no ratings
  EXPECT_EQ(m.movies[2].source_id, 29);
  EXPECT_EQ(m.movies[2].title, "City of Lost Children, The (Cité des enfants perdus, La) (1995)");
  EXPECT_EQ(m.movies[2].year, 1995);
  EXPECT_EQ(m.movies[1].genres, (std::vector<int>{2, 3, 4, 5, 9}));  // Children -> Children's (4)
  EXPECT_EQ(m.movies[3].title, "Usual Suspects, The (1995)");        // trimmed
  EXPECT_EQ(m.movies[3].genres, (std::vector<int>{6, 13, 16}));      // IMAX dropped
  EXPECT_EQ(m.movies[4].genres, (std::vector<int>{0}));              // (no genres listed) -> unknown
  EXPECT_EQ(m.movies[4].year, 0);
  ASSERT_EQ(m.ratings.size(), 5u);
  EXPECT_EQ(m.ratings[0].item, 2);  // movieId 29 renumbered
  EXPECT_EQ(m.ratings[0].half_stars, 7);
  EXPECT_EQ(m.ratings[0].rating, 4);      // 3.5 rounded up: an "order"
  EXPECT_EQ(m.ratings[1].rating, 1);      // 0.5
  EXPECT_EQ(m.ratings[3].rating, 3);      // 2.5
  EXPECT_EQ(m.ratings[4].half_stars, 8);  // "4" without a decimal
  EXPECT_EQ(ml::parse_latest_movies(kMovies, "movies.csv").imax_dropped, 1);
  // The split and the behaviour text work on it; no empty demographic profile is rendered.
  const ml::Split s = ml::leave_last_out(m, 1);
  ASSERT_EQ(s.users.size(), 2u);
  EXPECT_EQ(s.users[1].test.item, 1);  // user 3's latest (time 1300)
  const std::string text = hkf::behaviour_text(m, 3, s.users[1].train, {});
  EXPECT_EQ(text.find("year-old"), std::string::npos) << text;
  EXPECT_NE(text.find("Usual Suspects, The (1995)"), std::string::npos) << text;
}

TEST(MovieLensCsv, BadRowsNameTheFileLineAndWhatWasExpected) {
  const std::string rh = "userId,movieId,rating,timestamp\n";
  EXPECT_ERROR_HAS(
      ml::parse_latest_ratings("user,movie,rating,time\n", "r.csv"),
      "r.csv:1: expected the header 'userId,movieId,rating,timestamp', got 'user,movie,rating,time'");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings("", "r.csv"), "r.csv: expected the header");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "1,2,3.0,5\n1,2,3.0\n", "r.csv"),
                   "r.csv:3: expected 4 comma-separated fields (userId,movieId,rating,timestamp), got 3");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "1,2,4.3,5\n", "r.csv"),
                   "r.csv:2: field rating: expected 0.5..5 in steps of 0.5, got '4.3'");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "1,2,6,5\n", "r.csv"), "got '6'");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "1,2,0,5\n", "r.csv"), "got '0'");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "1,2,good,5\n", "r.csv"),
                   "r.csv:2: field rating: expected a number, got 'good'");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "1,x2,4,5\n", "r.csv"),
                   "r.csv:2: field movieId: expected an integer, got 'x2'");
  EXPECT_ERROR_HAS(ml::parse_latest_ratings(rh + "0,2,4,5\n", "r.csv"), "r.csv:2: ids start at 1");
  const std::string mh = "movieId,title,genres\n";
  EXPECT_ERROR_HAS(
      ml::parse_latest_movies(mh + "1,Toy Story (1995),Comedy\n2,Heat, The (1995),Action\n", "m.csv"),
      "m.csv:3: expected 3 comma-separated fields (movieId,title,genres; a title with a comma must "
      "be in quotes), got 4");
  EXPECT_ERROR_HAS(ml::parse_latest_movies(mh + "1,A (1995),Comedy|Cartoon\n", "m.csv"),
                   "m.csv:2: field genres: expected '|'-separated MovieLens genres, got 'Cartoon'");
  EXPECT_ERROR_HAS(ml::parse_latest_movies(mh + "1,A (1995),Comedy\n1,B (1996),Drama\n", "m.csv"),
                   "m.csv:3: movieId 1 appears twice");
  EXPECT_ERROR_HAS(ml::parse_latest_movies(mh + "1,\"\",Comedy\n", "m.csv"),
                   "m.csv:2: field title: expected a title");
  EXPECT_ERROR_HAS(ml::parse_latest_movies(mh + "1,\"A, (1995),Comedy\n", "m.csv"),
                   "m.csv:2: field 2: expected a closing '\"'");
  // Across the files: a rating of a movie that movies.csv lacks; folders with neither format.
  TempDir d;
  d.write("movies.csv", kMovies);
  d.write("ratings.csv", rh + "1,1,4,5\n2,99,4,6\n");
  EXPECT_ERROR_HAS(ml::read_latest_small(d.str()), "ratings.csv: rating 2 (user 2): movieId 99 is not in");
  TempDir empty;
  EXPECT_ERROR_HAS(ml::read_dataset(empty.str()), "got neither u.data nor ratings.csv");
  empty.write("ratings.csv", rh);
  EXPECT_ERROR_HAS(ml::read_dataset(empty.str()), "movies.csv");
}

TEST(MovieLensCsv, TheConvertedLatestSmallFilesWhenPresent) {
  const std::string dir = NABLA_SOURCE_DIR "/../shared/data/ml-latest-small";
  if (!fs::exists(dir + "/ratings.csv"))
    GTEST_SKIP() << "no " << dir << " (scripts/movielens_latest_small.py)";
  const ml::MovieLens m = ml::read_latest_small(dir);
  EXPECT_EQ(m.ratings.size(), 100004u);
  EXPECT_EQ(m.num_users(), 671);
  EXPECT_EQ(m.num_items(), 9066);
  EXPECT_EQ(m.movies[1].title, "Toy Story (1995)");
}

}  // namespace
}  // namespace nabla::test
