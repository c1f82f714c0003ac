# Reference values from R's survival package for tests/test_small_trial_stats.py.
# Usage: Rscript tests/r/trial_stats.R DIR
#   reads  DIR/bundled.tsv, DIR/demo.tsv, DIR/separation.tsv (one row per patient: cohort, group, mrd_positive,
#          pfs_months, pfs_event, age; written by the test),
#   writes DIR/heart.tsv and DIR/pbcseq_landmark.tsv (datasets shipped with survival) and the results:
#          logrank.tsv, rmst.tsv, followup.tsv, concordance.tsv, cox.tsv, zph.tsv, firth.tsv, quantile.tsv,
#          safe_to_stop.tsv, safe_to_stop_accuracy.tsv (baseline status, per cohort and pooled).
# Cox models use ties = "efron" and eps = 1e-14 (R's optimum to double precision). coxphf is not on this
# machine (nor on Debian): the Firth reference is computed here from its definition, the Breslow log partial
# likelihood plus half the log determinant of the information, both from survival's coxph (iter.max = 0
# evaluates them at a given beta), maximised and profiled with optimize/uniroot at tolerance 1e-12.
suppressPackageStartupMessages(library(survival))
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "safe_to_stop.R"))

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
control <- coxph.control(eps = 1e-14, toler.chol = 1e-15, iter.max = 100)
tables <- list(logrank = list(), rmst = list(), followup = list(), concordance = list(), cox = list(),
               zph = list(), firth = list(), quantile = list(), safe_to_stop = list(), safe_to_stop_accuracy = list())
add <- function(name, frame) tables[[name]][[length(tables[[name]]) + 1]] <<- frame
read <- function(name) read.delim(file.path(dir, paste0(name, ".tsv")), stringsAsFactors = FALSE)
datasets <- list(bundled = read("bundled"), demo = read("demo"), separation = read("separation"))

# --- stratified log-rank: survdiff(... + strata(cohort)), obs and exp summed over the strata -----------------
for (name in names(datasets)) {
  d <- datasets[[name]]
  for (stratified in c(TRUE, FALSE)) {
    formula <- if (stratified) Surv(pfs_months, pfs_event) ~ group + strata(cohort) else
      Surv(pfs_months, pfs_event) ~ group
    test <- survdiff(formula, data = d)
    obs <- if (is.matrix(test$obs)) rowSums(test$obs) else test$obs
    exp <- if (is.matrix(test$exp)) rowSums(test$exp) else test$exp
    add("logrank", data.frame(dataset = name, stratified, group = sub(".*=", "", names(test$n)),
                              observed = obs, expected = exp, chisq = test$chisq, df = length(test$n) - 1))
  }
}

# --- safe to stop at baseline: 1-year PFS by status (survfit, binom.test) and the accuracy figures ------------
for (name in names(datasets)) {
  d <- datasets[[name]]
  for (cohort in c("all", sort(unique(d$cohort)))) {
    rows <- d[cohort == "all" | d$cohort == cohort, ]
    result <- safe_to_stop(cohort, "baseline", data.frame(time = rows$pfs_months, event = rows$pfs_event,
                                                          status = rows$group))
    add("safe_to_stop", cbind(dataset = name, result$figures))
    add("safe_to_stop_accuracy", cbind(dataset = name, result$accuracy))
  }
}

# --- RMST: per group as print(survfit, rmean = tau); the comparison as survRM2::rmst2 ---------------------------
for (name in c("bundled", "demo")) {
  d <- datasets[[name]]
  for (tau in c(12, 24, 36)) {
    fit <- survfit(Surv(pfs_months, pfs_event) ~ group, data = d)
    table <- summary(fit, rmean = tau)$table
    groups <- sub(".*=", "", rownames(table))
    rmst <- table[, "rmean"]; se <- table[, "se(rmean)"]
    names(rmst) <- names(se) <- groups
    z <- qnorm(0.975)
    difference <- rmst[["positive"]] - rmst[["negative"]]
    difference_se <- sqrt(se[["positive"]]^2 + se[["negative"]]^2)
    log_ratio <- log(rmst[["positive"]] / rmst[["negative"]])
    log_ratio_se <- sqrt((se[["positive"]] / rmst[["positive"]])^2 + (se[["negative"]] / rmst[["negative"]])^2)
    add("rmst", data.frame(dataset = name, tau, group = groups, rmst = unname(rmst), se = unname(se),
                           difference, difference_low = difference - z * difference_se,
                           difference_high = difference + z * difference_se,
                           difference_p = 2 * pnorm(-abs(difference) / difference_se),
                           ratio = exp(log_ratio), ratio_low = exp(log_ratio - z * log_ratio_se),
                           ratio_high = exp(log_ratio + z * log_ratio_se),
                           ratio_p = 2 * pnorm(-abs(log_ratio) / log_ratio_se)))
  }
}

# --- median follow-up: the reverse Kaplan-Meier ------------------------------------------------------------------
for (name in names(datasets)) {
  d <- datasets[[name]]
  for (ct in c("log", "log-log")) {
    q <- quantile(survfit(Surv(pfs_months, 1 - pfs_event) ~ 1, data = d, conf.type = ct), 0.5)
    add("followup", data.frame(dataset = name, conf = ct, median = unname(q$quantile), lower = unname(q$lower),
                               upper = unname(q$upper)))
  }
}

# --- Cox fits: coefficients, model tests, concordance with its standard error, cox.zph ------------------------
heart <- survival::heart
heart$transplant <- as.integer(as.character(heart$transplant))
write.table(heart, file.path(dir, "heart.tsv"), sep = "\t", quote = FALSE, row.names = FALSE, na = "")
cox <- function(dataset, model, formula, data) {
  fit <- eval(bquote(coxph(.(formula), data = .(data), ties = "efron", control = .(control))))
  terms <- names(coef(fit))
  add("cox", data.frame(dataset, model, term = terms, coef = unname(coef(fit)), se = sqrt(diag(vcov(fit))),
                        loglik_null = fit$loglik[1], loglik = fit$loglik[2], lr = 2 * diff(fit$loglik),
                        score = fit$score, wald = fit$wald.test))
  c_index <- concordance(fit)
  add("concordance", data.frame(dataset, model, concordance = c_index$concordance, se = sqrt(c_index$var)))
  if (!any(abs(coef(fit)) > 15)) {  # no cox.zph for a diverged fit
    z <- cox.zph(fit, transform = "km")$table
    add("zph", data.frame(dataset, model, term = rownames(z), chisq = z[, "chisq"]))
  }
}
demo <- datasets$demo
cox("demo", "mrd_strata", Surv(pfs_months, pfs_event) ~ mrd_positive + strata(cohort), demo)
cox("demo", "mrd_age_strata", Surv(pfs_months, pfs_event) ~ mrd_positive + age + strata(cohort), demo)
cox("demo", "mrd_age_stop", Surv(pfs_months, pfs_event) ~ mrd_positive + age, demo[demo$cohort == "stop", ])
cox("heart", "time_varying", Surv(start, stop, event) ~ transplant + age + surgery, heart)
separated <- datasets$separation[datasets$separation$cohort == "continue", ]
cox("separation", "mrd", Surv(pfs_months, pfs_event) ~ mrd_positive, separated)
cox("separation", "mrd_age", Surv(pfs_months, pfs_event) ~ mrd_positive + age, separated)
cox("bundled", "mrd_strata", Surv(pfs_months, pfs_event) ~ mrd_positive + strata(cohort), datasets$bundled)

# --- Firth's penalized likelihood, from its definition ---------------------------------------------------------
penalized <- function(formula, data) {
  function(beta) {
    fit <- coxph(formula, data = data, ties = "breslow", init = beta, control = coxph.control(iter.max = 0))
    # Far out, the information underflows and coxph reports a singular variance: l* is -Inf there.
    information <- tryCatch(solve(fit$var), error = function(e) NULL)
    if (is.null(information) || det(information) <= 0) return(-1e10)
    fit$loglik[2] + 0.5 * log(det(information))
  }
}
maximise <- function(f, interval = c(-15, 15)) optimize(f, interval, maximum = TRUE, tol = 1e-12)
firth <- function(dataset, model, formula, data, terms) {
  pl <- penalized(formula, data)
  if (length(terms) == 1) {
    profile <- function(b) pl(b)
    best <- maximise(profile)
    estimate <- best$maximum
    others <- numeric(0)
  } else {  # two terms: the second profiled out for each value of the first
    inner <- function(b) maximise(function(a) pl(c(b, a)))$objective
    profile <- inner
    best <- maximise(profile)
    estimate <- best$maximum
    others <- maximise(function(a) pl(c(estimate, a)))$maximum
  }
  top <- best$objective
  cut <- top - qchisq(0.95, 1) / 2
  lower <- uniroot(function(b) profile(b) - cut, c(estimate - 15, estimate), tol = 1e-12)$root
  upper <- uniroot(function(b) profile(b) - cut, c(estimate, estimate + 15), tol = 1e-12)$root
  null <- pl(rep(0, length(terms)))
  add("firth", data.frame(dataset, model, term = terms[1], coef = estimate, lower, upper,
                          chisq = 2 * (top - profile(0)), loglik_null = null, loglik = top,
                          other_coef = if (length(others)) others else NA))
}
firth("separation", "mrd", Surv(pfs_months, pfs_event) ~ mrd_positive, separated, "mrd_positive")
firth("separation", "mrd_age", Surv(pfs_months, pfs_event) ~ mrd_positive + age, separated,
      c("mrd_positive", "age"))
firth("separation", "mrd_strata", Surv(pfs_months, pfs_event) ~ mrd_positive + strata(cohort),
      datasets$separation, "mrd_positive")
firth("bundled", "mrd", Surv(pfs_months, pfs_event) ~ mrd_positive, datasets$bundled, "mrd_positive")
# Counting-process rows: heart with the events after a transplant censored (no death while transplanted).
heart_separated <- heart
heart_separated$event[heart$transplant == 1] <- 0
firth("heart", "separated", Surv(start, stop, event) ~ transplant + age, heart_separated, c("transplant", "age"))

# --- a Kaplan-Meier median whose confidence band is not monotone: pbcseq, landmark 12 months -------------------
pbc <- survival::pbcseq[!duplicated(survival::pbcseq$id), ]
pbc$months <- pbc$futime / 30.4375
landmark <- pbc[pbc$months > 12 & pbc$trt == 0, ]
landmark <- data.frame(time = landmark$months - 12, event = as.integer(landmark$status > 0))
write.table(landmark, file.path(dir, "pbcseq_landmark.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
for (ct in c("log", "log-log")) {
  q <- quantile(survfit(Surv(time, event) ~ 1, data = landmark, conf.type = ct), 0.5)
  add("quantile", data.frame(dataset = "pbcseq_landmark", conf = ct, median = unname(q$quantile),
                             lower = unname(q$lower), upper = unname(q$upper)))
}

for (name in names(tables)) {
  write.table(do.call(rbind, tables[[name]]), file.path(dir, paste0(name, ".tsv")), sep = "\t", quote = FALSE,
              row.names = FALSE, na = "")
}
