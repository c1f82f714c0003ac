# Reference values from R's survival package for tests/test_survival.py.
# Usage: Rscript tests/r/crosscheck.R DIR
#   reads  DIR/patients.tsv and DIR/counting_process.tsv (a synthetic trial written by mrdtrack),
#   writes DIR/rotterdam.tsv and DIR/heart.tsv (datasets shipped with survival) and the results:
#   km_curves.tsv, km_times.tsv, km_medians.tsv, logrank.tsv, cox.tsv, zph.tsv, landmark_data.tsv, and for the
#   small-trial figures safe_to_stop.tsv, safe_to_stop_accuracy.tsv, rmst.tsv, followup.tsv, restart.tsv.
# Every Cox model uses ties = "efron" and a tight convergence criterion. The landmark data sets and the
# ever-positive covariate are built here again from the two tables, following their definitions in docs/tables.md.
suppressPackageStartupMessages(library(survival))
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "safe_to_stop.R"))

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
control <- coxph.control(eps = 1e-14, toler.chol = 1e-15, iter.max = 100)
tables <- list(km_curves = list(), km_times = list(), km_medians = list(), logrank = list(), cox = list(), zph = list(),
               landmark_data = list(), safe_to_stop = list(), safe_to_stop_accuracy = list(), rmst = list(),
               followup = list(), restart = list())
add <- function(name, frame) tables[[name]][[length(tables[[name]]) + 1]] <<- frame

# zero_se_rule (the CI where the standard error is 0), exact and safe_to_stop: tests/r/safe_to_stop.R

km <- function(dataset, group, time, status, times) {
  for (ct in c("log", "log-log")) {
    fit <- survfit(Surv(time, status) ~ 1, conf.type = ct)
    ci <- zero_se_rule(fit$lower, fit$upper, fit$surv, fit$std.err)
    add("km_curves", data.frame(dataset, group, conf = ct, time = fit$time, surv = fit$surv,
                                std_err = fit$std.err, lower = ci$lower, upper = ci$upper, n_risk = fit$n.risk))
    s <- summary(fit, times = times)
    ci <- zero_se_rule(s$lower, s$upper, s$surv, s$std.err)
    add("km_times", data.frame(dataset, group, conf = ct, time = s$time, surv = s$surv, lower = ci$lower,
                               upper = ci$upper, n_risk = s$n.risk, surv_std_err = s$std.err))
    q <- quantile(fit, 0.5)
    add("km_medians", data.frame(dataset, group, conf = ct, median = unname(q$quantile),
                                 lower = unname(q$lower), upper = unname(q$upper)))
  }
}

cox <- function(dataset, model, formula, data) {
  # The data frame goes into the call itself, so update() and cox.zph() can re-evaluate it anywhere.
  fit <- eval(bquote(coxph(.(formula), data = .(data), ties = "efron", control = .(control))))
  s <- summary(fit)
  terms <- names(coef(fit))
  p_lr <- sapply(terms, function(term) {
    if (length(terms) == 1) return(pchisq(2 * diff(fit$loglik), 1, lower.tail = FALSE))
    reduced <- update(fit, as.formula(paste(". ~ . -", term)))
    pchisq(2 * (fit$loglik[2] - reduced$loglik[2]), 1, lower.tail = FALSE)
  })
  # Model tests as summary(coxph) prints them, from the unrounded fit$wald.test and fit$score (summary rounds
  # the Wald statistic to 2 decimals before its p-value).
  df <- length(terms)
  add("cox", data.frame(dataset, model, term = terms, n = fit$n, events = fit$nevent, coef = unname(coef(fit)),
                        se = sqrt(diag(vcov(fit))), hr = unname(exp(coef(fit))),
                        lower = s$conf.int[, "lower .95"], upper = s$conf.int[, "upper .95"],
                        p_wald = s$coefficients[, "Pr(>|z|)"], p_lr = unname(p_lr), lr = 2 * diff(fit$loglik),
                        lr_p = unname(s$logtest["pvalue"]), df = df,
                        wald = fit$wald.test, wald_p = pchisq(fit$wald.test, df, lower.tail = FALSE),
                        score = fit$score, score_p = unname(s$sctest["pvalue"]),
                        loglik_null = fit$loglik[1], loglik = fit$loglik[2],
                        concordance = unname(concordance(fit)$concordance),
                        concordance_se = sqrt(unname(concordance(fit)$var))))
  z <- cox.zph(fit, transform = "km")$table
  add("zph", data.frame(dataset, model, term = rownames(z), chisq = z[, "chisq"], df = z[, "df"], p = z[, "p"]))
}

# --- the synthetic trial, as mrdtrack wrote it -------------------------------------------------------------
patients <- read.delim(file.path(dir, "patients.tsv"), na.strings = "", stringsAsFactors = FALSE)
counting <- read.delim(file.path(dir, "counting_process.tsv"), na.strings = "", stringsAsFactors = FALSE)
det <- patients[patients$baseline_status %in% c("positive", "negative"), ]
det$mrd_positive <- as.integer(det$baseline_status == "positive")
for (g in c("positive", "negative")) {
  d <- det[det$baseline_status == g, ]
  km("trial", g, d$pfs_months, d$pfs_event, c(6, 12, 24))
}
logrank <- function(dataset, formula, data) {
  test <- survdiff(formula, data = data)
  levels <- sub(".*=", "", names(test$n))
  add("logrank", data.frame(dataset, group = levels, chisq = test$chisq, observed = test$obs, expected = test$exp))
}
logrank("trial", Surv(pfs_months, pfs_event) ~ mrd_positive, det)
# Stratified by cohort: obs and exp are per stratum (matrices), summed over the strata.
stratified <- survdiff(Surv(pfs_months, pfs_event) ~ mrd_positive + strata(cohort), data = det)
add("logrank", data.frame(dataset = "trial_stratified", group = sub(".*=", "", names(stratified$n)),
                          chisq = stratified$chisq, observed = rowSums(stratified$obs),
                          expected = rowSums(stratified$exp)))
cox("trial", "baseline_unadjusted", Surv(pfs_months, pfs_event) ~ mrd_positive + strata(cohort), det)
cox("trial", "baseline_unadjusted_stop", Surv(pfs_months, pfs_event) ~ mrd_positive, det[det$cohort == "stop", ])
adjusted <- det[complete.cases(det[, c("age", "hr_positive")]), ]
cox("trial", "baseline_adjusted", Surv(pfs_months, pfs_event) ~ mrd_positive + age + hr_positive + strata(cohort),
    adjusted)
tv <- counting[!is.na(counting$mrd_positive), ]
cox("trial", "time_varying_status", Surv(start, stop, event) ~ mrd_positive + strata(cohort), tv)
tf <- counting[!is.na(counting$log10_tf), ]
cox("trial", "time_varying_log10_tf", Surv(start, stop, event) ~ log10_tf + strata(cohort), tf)
tv_adjusted <- merge(tv, patients[, c("patient_id", "age", "hr_positive")], by = "patient_id")
tv_adjusted <- tv_adjusted[complete.cases(tv_adjusted[, c("age", "hr_positive")]), ]
cox("trial", "time_varying_status_adjusted",
    Surv(start, stop, event) ~ mrd_positive + age + hr_positive + strata(cohort), tv_adjusted)

# Ever positive: 1 from the first positive sample on, 0 after a determinate sample while none was positive yet.
counting <- counting[order(counting$patient_id, counting$start), ]
counting$ever_positive <- ave(counting$mrd_positive, counting$patient_id, FUN = function(status) {
  positive <- cummax(!is.na(status) & status == 1)
  known <- cummax(!is.na(status))
  ifelse(positive == 1, 1, ifelse(known == 1, 0, NA))
})
ever <- counting[!is.na(counting$ever_positive), ]
cox("trial", "time_varying_ever_positive", Surv(start, stop, event) ~ ever_positive + strata(cohort), ever)
ever_adjusted <- merge(ever, patients[, c("patient_id", "age", "hr_positive")], by = "patient_id")
ever_adjusted <- ever_adjusted[complete.cases(ever_adjusted[, c("age", "hr_positive")]), ]
cox("trial", "time_varying_ever_positive_adjusted",
    Surv(start, stop, event) ~ ever_positive + age + hr_positive + strata(cohort), ever_adjusted)

# Landmarks: patients progression-free after L; status from the last sample at or before L, or from the
# determinate sample closest to L within 45 days either side (ties: the earlier).
landmark_set <- function(landmark, window = NULL) {
  at_risk <- patients[patients$pfs_months > landmark, c("patient_id", "cohort", "pfs_months", "pfs_event")]
  rows <- counting
  rows$offset <- round((rows$start - landmark) * 30.4375, 6)
  if (is.null(window)) {
    chosen <- rows[rows$start <= landmark & rows$stop > landmark, ]
  } else {
    near <- rows[!is.na(rows$mrd_positive) & abs(rows$offset) <= window, ]
    near <- near[order(near$patient_id, abs(near$offset), near$offset), ]
    chosen <- near[!duplicated(near$patient_id), ]
  }
  data <- merge(at_risk, chosen[, c("patient_id", "mrd_positive", "offset")], by = "patient_id", all.x = TRUE)
  data$time <- data$pfs_months - landmark
  data
}
for (landmark in c(3, 6, 12)) {
  for (rule in c("last_at_or_before", "closest_within_window")) {
    data <- landmark_set(landmark, if (rule == "closest_within_window") 45 else NULL)
    add("landmark_data", data.frame(landmark_months = landmark, status_rule = rule, patient_id = data$patient_id,
                                    time = data$time, mrd_positive = data$mrd_positive, offset = data$offset))
    name <- paste0("landmark_", landmark, "m", if (rule == "closest_within_window") "_closest" else "")
    known <- data[!is.na(data$mrd_positive), ]
    for (g in c("positive", "negative")) {
      d <- known[known$mrd_positive == as.integer(g == "positive"), ]
      km(name, g, d$time, d$pfs_event, c(6, 12, 24))
    }
    km(name, "all", data$time, data$pfs_event, c(6, 12, 24))
    logrank(name, Surv(time, pfs_event) ~ mrd_positive, known)
    cox("trial", name, Surv(time, pfs_event) ~ mrd_positive + strata(cohort), known)
  }
}

# --- overall survival by baseline status ------------------------------------------------------------------
for (g in c("positive", "negative")) {
  d <- det[det$baseline_status == g, ]
  km("os_trial", g, d$os_months, d$os_event, c(6, 12, 24))
}
logrank("os_trial", Surv(os_months, os_event) ~ mrd_positive, det)
cox("trial", "os_baseline_unadjusted", Surv(os_months, os_event) ~ mrd_positive + strata(cohort), det)
cox("trial", "os_baseline_unadjusted_stop", Surv(os_months, os_event) ~ mrd_positive, det[det$cohort == "stop", ])
cox("trial", "os_baseline_adjusted", Surv(os_months, os_event) ~ mrd_positive + age + hr_positive + strata(cohort),
    adjusted)

# --- per cohort and pooled: RMST by baseline status (print.survfit rmean; difference and ratio as survRM2) and
# median follow-up by the reverse Kaplan-Meier ------------------------------------------------------------------
by_cohort <- c(list(all = det), split(det, det$cohort))
for (cohort in names(by_cohort)) {
  d <- by_cohort[[cohort]]
  for (tau in c(12, 24, 36)) {
    table <- summary(survfit(Surv(pfs_months, pfs_event) ~ baseline_status, data = d), rmean = tau)$table
    rownames(table) <- sub(".*=", "", rownames(table))
    m <- table[c("positive", "negative"), "rmean"]; se <- table[c("positive", "negative"), "se(rmean)"]
    z <- qnorm(0.975)
    difference <- m[[1]] - m[[2]]; difference_se <- sqrt(sum(se^2))
    log_ratio <- log(m[[1]] / m[[2]]); log_ratio_se <- sqrt(sum((se / m)^2))
    add("rmst", data.frame(cohort, tau, rmst_positive = m[[1]], rmst_positive_se = se[[1]], rmst_negative = m[[2]],
                           rmst_negative_se = se[[2]], difference, difference_se,
                           difference_p = 2 * pnorm(-abs(difference) / difference_se), ratio = exp(log_ratio),
                           ratio_ci_low = exp(log_ratio - z * log_ratio_se),
                           ratio_ci_high = exp(log_ratio + z * log_ratio_se)))
  }
}
everyone <- c(list(all = patients), split(patients, patients$cohort))
for (cohort in names(everyone)) {
  d <- everyone[[cohort]]
  for (endpoint in c("pfs", "os")) {
    time <- d[[paste0(endpoint, "_months")]]; event <- d[[paste0(endpoint, "_event")]]
    q <- quantile(survfit(Surv(time, 1 - event) ~ 1), 0.5)
    add("followup", data.frame(cohort, endpoint, median = unname(q$quantile), lower = unname(q$lower),
                               upper = unname(q$upper)))
  }
}

# --- safe to stop: PFS one year after baseline and after each landmark, by status (tests/r/safe_to_stop.R) -----
timepoints <- list(baseline = data.frame(cohort = patients$cohort, time = patients$pfs_months,
                                         event = patients$pfs_event, status = patients$baseline_status))
for (landmark in c(3, 6, 12)) {
  data <- landmark_set(landmark)
  status <- ifelse(is.na(data$mrd_positive), NA, ifelse(data$mrd_positive == 1, "positive", "negative"))
  timepoints[[paste0("landmark_", landmark, "m")]] <- data.frame(cohort = data$cohort, time = data$time,
                                                                 event = data$pfs_event, status = status)
}
for (timepoint in names(timepoints)) {
  data <- timepoints[[timepoint]]
  for (cohort in c("all", sort(unique(patients$cohort)))) {
    rows <- safe_to_stop(cohort, timepoint, if (cohort == "all") data else data[data$cohort == cohort, ])
    add("safe_to_stop", rows$figures)
    add("safe_to_stop_accuracy", rows$accuracy)
  }
}

# --- clinical benefit after a restart, and time on restarted therapy ------------------------------------------
# Patients who progressed and restarted on or after the progression; time from the restart to the next
# progression, or death, censored at os_date; benefit = CR, PR, or SD for >= 24 weeks (168 days).
day <- function(x) as.Date(ifelse(is.na(x) | x == "", NA, x))
restarted <- patients[patients$pfs_event == 1 & !is.na(day(patients$restart_date)) &
                        day(patients$restart_date) >= day(patients$pfs_date), ]
end <- day(restarted$restart_progression_date)
end[is.na(end)] <- day(restarted$os_date)[is.na(end)]
restarted$days <- as.numeric(end - day(restarted$restart_date))
restarted$event <- as.integer(!is.na(day(restarted$restart_progression_date)) | restarted$os_event == 1)
response <- ifelse(is.na(restarted$restart_best_response), "", restarted$restart_best_response)
restarted$benefit <- ifelse(response %in% c("CR", "PR") | (response == "SD" & restarted$days >= 168), 1,
                            ifelse(response == "PD" | (response == "SD" & restarted$event == 1), 0, NA))
for (cohort in sort(unique(restarted$cohort))) {
  d <- restarted[restarted$cohort == cohort, ]
  rate <- exact(sum(d$benefit == 1, na.rm = TRUE), sum(!is.na(d$benefit)))
  q <- quantile(survfit(Surv(days / 30.4375, event) ~ 1, data = d, conf.type = "log-log"), 0.5)
  add("restart", data.frame(cohort, n_restarted = nrow(d), evaluable = sum(!is.na(d$benefit)),
                            clinical_benefit = sum(d$benefit == 1, na.rm = TRUE), benefit_rate = rate[1],
                            benefit_ci_low = rate[2], benefit_ci_high = rate[3], events = sum(d$event),
                            median = unname(q$quantile), lower = unname(q$lower), upper = unname(q$upper)))
}

# --- datasets shipped with R ---------------------------------------------------------------------------------
rott <- survival::rotterdam
write.table(rott, file.path(dir, "rotterdam.tsv"), sep = "\t", quote = FALSE, row.names = FALSE, na = "")
for (g in 0:1) {
  d <- rott[rott$hormon == g, ]
  km("rotterdam", as.character(g), d$rtime, d$recur, c(1000, 2000, 3000))
}
logrank("rotterdam", Surv(rtime, recur) ~ hormon, rott)
cox("rotterdam", "baseline", Surv(rtime, recur) ~ age + nodes + hormon + pgr, rott)

heart <- survival::heart
heart$transplant <- as.integer(as.character(heart$transplant))  # a 0/1 number, named as in Python
write.table(heart, file.path(dir, "heart.tsv"), sep = "\t", quote = FALSE, row.names = FALSE, na = "")
cox("heart", "time_varying", Surv(start, stop, event) ~ transplant + age + surgery, heart)

for (name in names(tables)) {
  write.table(do.call(rbind, tables[[name]]), file.path(dir, paste0(name, ".tsv")), sep = "\t", quote = FALSE,
              row.names = FALSE, na = "")
}
