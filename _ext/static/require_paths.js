// The widget manager (an AMD module) loads its icon fonts from a path relative to its
// module name, "@jupyter-widgets/html-manager/dist/"; map that name to the copy served
// next to this file, so that pages at any depth find the fonts in _static/html-manager/.
(function () {
  var staticRoot = document.currentScript.src.replace(/[^/]*$/, "");
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": staticRoot + "html-manager" } });
})();
