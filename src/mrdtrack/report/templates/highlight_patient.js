// Tumor-fraction trajectories: hovering a patient's samples fades every other patient's line, so one patient
// stands out among ~80; a click keeps the highlight (click the patient again, or another, to change it).
// Plain DOM styling, not Plotly.restyle: a restyle redraws the plot and would end the hover it answers.
(function () {
  var gd = document.getElementById("{plot_id}");
  var pinned = null;
  function highlight(patient) {
    gd.querySelectorAll("g.trace.scatter").forEach(function (group) {
      var trace = group.__data__ && group.__data__[0] && group.__data__[0].trace;
      if (!trace || trace.meta !== "patient") return;
      var chosen = patient !== null && trace.name === patient;
      group.style.opacity = patient === null || chosen ? "" : "0.12";
      group.classList.toggle("highlighted", chosen);
    });
    gd.setAttribute("data-highlighted", patient === null ? "" : patient);
  }
  function patientOf(event) {
    var trace = event.points && event.points[0] && event.points[0].data;
    return trace && trace.meta === "patient" ? trace.name : null;
  }
  gd.on("plotly_hover", function (event) {
    if (pinned === null && patientOf(event) !== null) highlight(patientOf(event));
  });
  gd.on("plotly_unhover", function () {
    if (pinned === null) highlight(null);
  });
  gd.on("plotly_click", function (event) {
    var patient = patientOf(event);
    if (patient === null) return;
    pinned = pinned === patient ? null : patient;
    highlight(pinned === null ? patient : pinned);
  });
  gd.on("plotly_afterplot", function () {
    highlight(pinned);  // a zoom or legend click redraws the lines unstyled
  });
})();
