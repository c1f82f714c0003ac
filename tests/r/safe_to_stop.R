# The safe-to-stop figures written in R from their definition (docs/tables.md, safe_to_stop.tsv), sourced by
# crosscheck.R and trial_stats.R.
# Evaluable = progressed by the horizon or followed to it; the Kaplan-Meier estimate at the horizon with its
# log-log CI (R's summary(survfit, times = horizon)), NA when the follow-up ends before it unless the curve has
# reached 0; the rate among evaluable patients and the accuracy figures with binom.test's exact interval.

# survival >= 3.8-4 gives the CI S to S where the standard error is 0 (S = 1 before the first event); older
# versions give NA for log-log there. The reference applies the current rule, so the tests hold on either.
zero_se_rule <- function(lower, upper, surv, std_err) {
  list(lower = ifelse(std_err == 0, surv, lower), upper = ifelse(std_err == 0, surv, upper))
}

km_at_horizon <- function(time, event, horizon = 12) {
  if (length(time) == 0) return(c(NA, NA, NA))
  fit <- survfit(Surv(time, event) ~ 1, conf.type = "log-log")
  if (horizon > max(fit$time)) return(if (tail(fit$surv, 1) == 0) c(0, NA, NA) else c(NA, NA, NA))
  s <- summary(fit, times = horizon)
  ci <- zero_se_rule(s$lower, s$upper, s$surv, s$std.err)
  c(s$surv, ci$lower, ci$upper)
}

# A proportion and its exact (Clopper-Pearson) interval; NA without trials.
exact <- function(k, n) if (n == 0) c(NA, NA, NA) else c(k / n, binom.test(k, n)$conf.int[1:2])

# data: one row per patient with time (from the timepoint), event, status ("positive", "negative", or other).
# Returns the rows of safe_to_stop.tsv (figures) and safe_to_stop_accuracy.tsv (accuracy) of one cohort and
# timepoint.
safe_to_stop <- function(cohort, timepoint, data, horizon = 12) {
  cells <- list()
  figures <- list()
  for (g in c("positive", "negative")) {
    d <- data[!is.na(data$status) & data$status == g, ]
    progressed <- d$event == 1 & d$time <= horizon
    free <- !progressed & d$time >= horizon
    k <- km_at_horizon(d$time, d$event, horizon)
    rate <- exact(sum(free), sum(progressed | free))
    figures[[g]] <- data.frame(cohort, timepoint, mrd_status = g, n = nrow(d), evaluable = sum(progressed | free),
                               progressed_1y = sum(progressed), not_evaluable = sum(!progressed & !free),
                               km_pfs_1y = k[1], km_ci_low = k[2], km_ci_high = k[3], rate_pfs_1y = rate[1],
                               rate_ci_low = rate[2], rate_ci_high = rate[3])
    cells[[g]] <- c(progressed = sum(progressed), free = sum(free), unknown = sum(!progressed & !free))
  }
  tp <- cells$positive[["progressed"]]; fp <- cells$positive[["free"]]
  tn <- cells$negative[["free"]]; fn <- cells$negative[["progressed"]]
  test <- rbind(sensitivity = exact(tp, tp + fn), specificity = exact(tn, tn + fp), ppv = exact(tp, tp + fp),
                npv = exact(tn, tn + fn))
  accuracy <- data.frame(cohort, timepoint, true_positive = tp, false_positive = fp, true_negative = tn,
                         false_negative = fn, not_evaluable = cells$positive[["unknown"]] + cells$negative[["unknown"]])
  for (name in rownames(test)) {
    accuracy[[name]] <- test[name, 1]
    accuracy[[paste0(name, "_ci_low")]] <- test[name, 2]
    accuracy[[paste0(name, "_ci_high")]] <- test[name, 3]
  }
  list(figures = do.call(rbind, figures), accuracy = accuracy)
}
