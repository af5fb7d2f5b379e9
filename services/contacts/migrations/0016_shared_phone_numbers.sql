-- People without e-mail may share a phone number (a couple on one line, a
-- family, a switchboard): imports match such a row to the person on its
-- number whose name agrees with it, or make a person of their own, so the
-- number is no longer unique among them. `people_phone` still finds them.
DROP INDEX people_phone_without_email;
