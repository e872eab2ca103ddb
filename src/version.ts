/** steerlab's version, recorded in every file it writes (vector files, run stores, reports). */
export const VERSION = "0.1.0";
