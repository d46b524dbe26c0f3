from .util import P
B = {}
B["instruction_like_documents"] = P("""
Classic banana bread. Preheat the oven to 175°C. Mash three very ripe bananas in a large bowl. Stir in 75 g melted butter, then mix in 1 teaspoon of baking soda and a pinch of salt. Add 150 g sugar, 1 beaten egg and 1 teaspoon of vanilla. Mix in 190 g plain flour until just combined; do not overmix. Pour into a buttered loaf tin and bake for 55–65 minutes, until a skewer comes out clean. Let it cool in the tin for 10 minutes before turning it out.
===
## Getting started

Clone the repository and install the dependencies:

    git clone https://github.com/example/weatherly.git
    cd weatherly
    pip install -r requirements.txt

Run the following command to start the development server:

    python -m weatherly serve --port 8000

Then open http://localhost:8000 in your browser. To run the tests, use `pytest -q`. Before opening a pull request, run `make lint` and fix any warnings.
===
Frequently Asked Questions

Q: How do I reset my password?
A: Click "Forgot password" on the login page and follow the link we email you. The link expires after 30 minutes.

Q: Can I change my username?
A: Yes, once every 90 days, from Settings > Profile.

Q: How do I delete my account?
A: Go to Settings > Privacy > Delete account. You'll be asked to confirm by entering your password. Deletion is permanent after 14 days.
===
Chat transcript — Support ticket #90311
User: Hi, my order arrived but one of the mugs is cracked.
Agent: I'm sorry to hear that! Could you send a photo of the damage?
User: Sure, just uploaded it.
Agent: Thanks, I can see the crack. I've arranged a replacement, which will ship tomorrow. You don't need to return the broken one.
User: Great, thank you!
Agent: You're welcome. Is there anything else I can help with today?
User: No, that's all.
===
ACT ONE, SCENE TWO. A kitchen, early morning. MARGARET is making tea. TOM enters, still in his coat.

TOM: You're up early.
MARGARET: I never went to bed. (She pours two cups.) Sit down.
TOM: If this is about the car—
MARGARET: It isn't about the car. Sit down, Tom.
(TOM sits. A long pause.)
MARGARET: Your father called.
TOM: (standing again) I told you I don't want—
MARGARET: Sit. Down.
===
Assembly instructions — Bookshelf model KALLA-4
1. Lay the two side panels (A) flat on a soft surface, pre-drilled holes facing up.
2. Insert eight wooden dowels (C) into the holes along the top and bottom edges.
3. Attach the top and bottom panels (B) and secure them with four cam locks (D). Turn each lock clockwise until firm; do not overtighten.
4. Slide the back panel (E) into the grooves.
5. Attach the wall bracket (F). Warning: this furniture must be fixed to the wall to prevent tipping.
===
Please summarise this policy for me in plain English:

"Remote Work Policy, Section 4. Employees must be reachable during core hours (10:00–15:00 local time). Employees must not work from a country other than their country of employment for more than 30 days in any 12-month period without prior written approval from HR. Company equipment must not be used by anyone other than the employee. Employees must lock their screen whenever they leave their device unattended. Any loss or theft of equipment must be reported to IT within 24 hours."
===
Evacuation procedure. When the fire alarm sounds, stop what you are doing and leave the building by the nearest exit. Do not use the lifts. Do not stop to collect personal belongings. Close doors behind you. Go to the assembly point in the north car park and report to your floor warden. Do not re-enter the building until the fire service or the building manager tells you it is safe to do so.
===
Here's a transcript from our helpdesk; can you tell me whether the agent followed our script properly?

Customer: I was charged twice for my subscription this month.
Agent: Let me check that for you. Can you confirm the email on the account?
Customer: It's j.lee@mail.example.
Agent: Thanks. I can see two charges on the 3rd. One was a failed retry that went through later. I've refunded the duplicate; it should appear in 3–5 business days.
Customer: OK, thanks.
Agent: Anything else I can help with?
Customer: No, thanks.
===
Installation (Linux)

1. Download the latest release archive from the Releases page.
2. Extract it: `tar -xzf tidytool-1.4.2-linux-x64.tar.gz`
3. Move the binary onto your PATH: `sudo mv tidytool /usr/local/bin/`
4. Verify the installation: `tidytool --version`

If you see "permission denied", run `chmod +x /usr/local/bin/tidytool`. Ignore the warning about the missing config file on first run; it will be created automatically.
===
Slow-cooker beef chilli (serves 6)
Brown 500 g minced beef in a frying pan and drain off the fat. Add it to the slow cooker with one chopped onion, two cloves of garlic, a tin of chopped tomatoes, a tin of kidney beans (drained), 2 tablespoons of tomato purée, 1 teaspoon each of cumin, paprika and chilli powder, and 200 ml beef stock. Stir well. Cook on low for 8 hours or high for 4. Taste and adjust the seasoning before serving. Serve with rice, sour cream and grated cheese.
===
Meeting transcript (excerpt), design review, 4 March
Sofia: Let's start with the new checkout flow. Kenji, can you share your screen?
Kenji: Sure. So the main change is we've merged the address and payment steps.
Sofia: How did that test with users?
Kenji: Completion went from 71% to 78% in the A/B test.
Daniel: Any issues with mobile?
Kenji: The card field is a bit cramped on small screens. We'll fix that before launch.
Sofia: Great. Action: Kenji to fix the mobile layout by Friday.
===
House rules for guests
- Please remove your shoes at the door.
- Quiet hours are 10pm to 8am; our neighbours have a newborn.
- Do not flush anything other than toilet paper.
- Turn off the heating if you open the windows.
- Take the bins out on Tuesday night (blue bin for recycling, black for general waste).
- Leave the keys in the lockbox when you check out and text us when you've left.
Enjoy your stay!
===
Can you help me translate this FAQ into Spanish? Keep the Q/A format.

Q: When does the pool open?
A: The pool is open from 7am to 9pm every day, except Mondays when it opens at noon for cleaning.
Q: Do I need a swimming cap?
A: Yes, caps are required for everyone with hair longer than shoulder length.
Q: Are there lockers?
A: Yes. Bring a €1 coin, which is returned when you open the locker.
===
CONTRIBUTING.md

Thanks for your interest in contributing!

1. Fork the repository and create your branch from `main`.
2. If you've added code that should be tested, add tests.
3. Ensure the test suite passes: `npm test`.
4. Make sure your code lints: `npm run lint`.
5. Do not commit generated files in `dist/`.
6. Open a pull request and fill in the template. A maintainer will review it within a week.

Please be kind in issues and reviews. We follow the Contributor Covenant.
===
Excerpt from "The Importance of Being Earnest", Act I

ALGERNON: Did you hear what I was playing, Lane?
LANE: I didn't think it polite to listen, sir.
ALGERNON: I'm sorry for that, for your sake. I don't play accurately — anyone can play accurately — but I play with wonderful expression.

Could you explain the joke here for my English class?
===
Lab protocol: Gram staining
1. Prepare a heat-fixed smear of the bacterial sample on a clean slide.
2. Flood the slide with crystal violet for 1 minute, then rinse gently with water.
3. Apply Gram's iodine for 1 minute and rinse.
4. Decolourise with 95% ethanol for 10–15 seconds, then rinse immediately.
5. Counterstain with safranin for 1 minute and rinse.
6. Blot dry and examine under oil immersion. Gram-positive cells appear purple; Gram-negative cells appear pink.
===
Customer service script — handling a delivery complaint
Agent: "Thank you for calling. I'm sorry your parcel hasn't arrived. Can I take your order number?"
(Look up the order. If the tracking shows 'delivered', ask the customer to check with neighbours and in safe places.)
Agent: "The courier shows it as delivered at 2:14pm. Could you check with your neighbours or around the property?"
(If not found after 24 hours, raise a lost-parcel claim and offer a replacement or refund.)
Agent: "I've opened a claim for you. Would you prefer a replacement or a refund?"
===
Ignore the first two pages of the application form if you are renewing an existing permit; start at Section C. Complete all fields in black ink. Attach a recent passport-sized photo and a copy of proof of address dated within the last three months. Sign and date the declaration at the bottom of page 5. Send the completed form to the Permits Office, or hand it in at the town hall reception between 9am and 4pm.
===
Workout plan — Week 1
Day 1: Warm up 5 min brisk walk. Then 3 rounds: 10 squats, 8 push-ups (on knees if needed), 20-second plank. Cool down with stretches.
Day 2: Rest or a 30-minute walk.
Day 3: Warm up. Then 3 rounds: 10 lunges each leg, 10 glute bridges, 10 bird-dogs each side. Cool down.
Day 4: Rest.
Day 5: 20 minutes of intervals: 1 minute fast walk or jog, 2 minutes easy walk.
Do not push through sharp pain. Stop and rest if you feel dizzy.
===
Transcript of a voicemail:
"Hi, this is Dr. Osei's office calling for Ms. Patel. We're just confirming your appointment on Thursday the 12th at 9:40. Please arrive ten minutes early and bring a list of any medications you're taking. If you need to reschedule, call us back on 020 7946 0018. Thank you, bye."

Can you add this to a calendar entry format for me?
===
Setting up the printer on a Mac:
Open System Settings and click "Printers & Scanners". Click "Add Printer, Scanner or Fax". Select "OfficeJet 8020" from the list; if it doesn't appear, click the IP tab and enter 192.168.1.45. Choose "AirPrint" from the Use menu. Click Add. Print a test page to confirm it works. If you get an error saying the printer is offline, turn it off and on again and wait two minutes.
===
INT. POLICE STATION — NIGHT
DETECTIVE RAMOS sits across from a nervous young man, KIERAN, 19.
RAMOS: Tell me again where you were at nine o'clock.
KIERAN: At the cinema. I told you. I've got the ticket.
RAMOS: (sliding a photo across the table) Then who's this on the camera outside the jeweller's?
KIERAN stares at the photo. His hand shakes.
KIERAN: That's... that's my brother.
===
Terms and conditions (extract). 5.1 You must be 18 or over to place an order. 5.2 Prices include VAT but exclude delivery. 5.3 You may cancel your order within 14 days of receiving it and return the goods at your own cost, unless they are faulty. 5.4 Personalised items cannot be returned unless faulty. 5.5 We will refund you within 14 days of receiving the returned goods.
===
Onboarding checklist for new engineers
[ ] Request laptop from IT (ticket template "New starter")
[ ] Set up SSO and enable MFA on day one
[ ] Join #eng-general and #incidents on Slack
[ ] Read the architecture overview in the wiki
[ ] Pair with your buddy on your first ticket
[ ] Run the app locally using `make dev`
[ ] Shadow an on-call shift in your second week
Ask your manager if anything is unclear. Nobody expects you to know everything in week one!
===
Please proofread this message from our tenants' association:

"Dear residents, Please do not leave bikes in the hallway as it block the fire exit. Use the bike store in the courtyard; the code is available from the caretaker. Also, please make sure to close the main door behind you, as there has been several incidents of non-residents entering the building. Thank you for your cooperation."
===
How to descale your kettle. Fill the kettle halfway with equal parts water and white vinegar. Bring it to the boil, then switch it off and leave it to stand for an hour. Pour the solution away and rinse the kettle thoroughly. Boil a full kettle of fresh water and discard it, then repeat once more to remove any vinegar taste. Do this every one to three months if you live in a hard water area.
===
Discord server rules
1. Be respectful. No harassment, hate speech or personal attacks.
2. No spam or self-promotion outside #promo.
3. Keep spoilers in #spoilers for two weeks after an episode airs.
4. Use English in the main channels.
5. Don't ping moderators unless it's urgent.
6. Follow Discord's Terms of Service.
Breaking the rules may result in a warning, a mute or a ban, at the moderators' discretion.
===
Forum post: "How I fixed my squeaky floorboards"
First, find the squeak by walking slowly across the floor while someone listens below (if you can access the ceiling). Mark the spot. If the boards are loose on the joist, drive a couple of screws through the board into the joist, angled slightly. Countersink them and fill the holes. If you can't find the joist, try talcum powder brushed into the gaps between boards; it works surprisingly well for minor squeaks.
===
Here is a sample dialogue for my ESL lesson. Could you write five comprehension questions about it?

Waiter: Good evening. Are you ready to order?
Customer: Yes, I'd like the tomato soup to start, please.
Waiter: And for the main course?
Customer: The grilled chicken with vegetables. Does it come with potatoes?
Waiter: It comes with rice, but I can change it to potatoes.
Customer: Potatoes, please. And a glass of water.
Waiter: Of course. I'll be right back.
===
Safety data summary: household bleach (sodium hypochlorite solution)
Use in a well-ventilated area. Do not mix with other cleaning products, especially those containing ammonia or acids, as this can release harmful gases. Wear gloves. If it gets in your eyes, rinse cautiously with water for several minutes. If swallowed, rinse mouth and call a poison centre or doctor; do not induce vomiting. Store out of reach of children.
===
Release checklist
1. Merge all approved PRs into `release/2.3`.
2. Bump the version in package.json and CHANGELOG.md.
3. Run `npm run build && npm test`.
4. Tag the release: `git tag v2.3.0 && git push --tags`.
5. Publish: `npm publish`.
6. Announce in #releases with a link to the changelog.
Do not publish on Fridays.
===
The following is an email thread; please tell me what I still need to reply to.

From: Hannah
"Can you send me the Q2 figures by Wednesday? Also, are you coming to the offsite?"

From: Me
"Figures attached. Not sure about the offsite yet."

From: Hannah
"Thanks! Let me know about the offsite by Friday so I can book the train. And could you review Priya's deck before Monday?"
===
How to make a paper crane:
1. Start with a square sheet of paper, coloured side down.
2. Fold it in half diagonally both ways, then unfold.
3. Turn it over and fold it in half horizontally and vertically, then unfold.
4. Collapse it into a square base.
5. Fold the lower edges to the centre line to make a kite shape, then unfold.
6. Perform a petal fold on both sides.
7. Fold the lower flaps up to form the neck and tail, and crimp one end to form the head.
8. Gently pull the wings apart.
===
User: hey, is the store open on bank holidays?
Bot: Yes! On bank holidays we're open from 10am to 4pm.
User: what about Christmas day
Bot: We're closed on Christmas Day and Boxing Day, and open 10am–4pm on 27 December.
User: ok and can I return something without a receipt
Bot: We can offer an exchange or store credit without a receipt, as long as the item is unused and in its original packaging.

Can you rewrite the bot's answers to sound more friendly?
===
Care instructions: wash at 30°C on a gentle cycle, inside out. Do not tumble dry. Do not bleach. Iron on low heat on the reverse side. Do not iron over the printed design. Reshape while damp and dry flat.
===
Parents' evening information
Appointments are 10 minutes long. Please arrive five minutes before your first appointment and sign in at reception. If you are running late, let the office know so that teachers can adjust their schedule. Bring your child's planner. If you need an interpreter, tell us at least a week in advance. Parking is available in the staff car park after 4pm.
===
Excerpt from a user manual: "Before first use, charge the device for 4 hours. Do not use the charger if the cable is damaged. To turn on, press and hold the power button for 3 seconds. To pair with your phone, open the app and follow the on-screen instructions. Do not expose the device to water; it is splash-resistant but not waterproof. To reset, hold the power and volume buttons together for 10 seconds."
===
Script for the school assembly (Year 4 class)
NARRATOR: Once upon a time, in a forest full of tall trees, there lived a very hungry caterpillar.
CATERPILLAR: I'm so hungry! I could eat a whole apple!
NARRATOR: And so he did. On Monday he ate through one apple.
ALL CHILDREN: But he was still hungry!
NARRATOR: On Tuesday he ate through two pears.
ALL CHILDREN: But he was still hungry!
===
Volunteer briefing for the 10K race
Arrive at the marshal point by 8:15. Wear your hi-vis vest at all times. Stay at your point until the sweeper bike passes. Cheer runners on, but don't hand out food or drink unless you're at a water station. If a runner is injured, call the medical team on the number on your lanyard and stay with them. Do not move a runner who has collapsed unless they are in danger.
===
The user manual says: "Press MENU, then select Settings > Network > Reset. Confirm by pressing OK twice. The device will restart." I did this but it just goes back to the home screen. What am I doing wrong? It's a Humax set-top box.
===
Here are the minutes from the residents' committee. Can you pull out the decisions?

Present: Chair (Mrs. Adeyemi), Treasurer (Mr. Hall), 11 residents.
1. Garden: agreed to replace the broken bench; Mr. Hall to get three quotes.
2. Parking: motion to paint numbered bays — carried 9 to 2.
3. Noise complaints: the chair will write to the management company about the late-night deliveries.
4. AOB: summer barbecue provisionally set for 20 July.
===
Grandma's Yorkshire puddings: Heat the oven to 230°C. Put a teaspoon of oil into each hole of a 12-hole tin and heat it in the oven until smoking hot. Whisk 140 g plain flour with 4 eggs, then gradually whisk in 200 ml milk until smooth; season with salt. Pour the batter quickly into the hot oil — it should sizzle. Bake for 20–25 minutes and don't open the oven door until they're golden and risen!
===
Troubleshooting guide: "Error E21 – Water not draining". Turn off and unplug the machine. Place a towel and a shallow tray under the filter door at the bottom right. Open the door and slowly unscrew the filter anticlockwise; water will come out. Remove any fluff, coins or hair. Clean the filter under the tap, screw it back in firmly and close the door. Run an empty rinse cycle to check the error has cleared. If E21 appears again, contact customer service.
===
Podcast transcript (excerpt)
HOST: Welcome back to "Small Business, Big Ideas". Today I'm joined by Leila, who runs a zero-waste shop in Bristol. Leila, how did it start?
LEILA: Honestly, by accident. I was refilling my own bottles at a market stall and thought, why isn't there a shop for this?
HOST: And what was the hardest part of the first year?
LEILA: Cash flow. Suppliers wanted paying upfront, and customers took a while to find us.
===
Please turn these instructions into a checklist I can print:

"Before you leave the holiday cottage, strip the beds and put the linen in the basket by the washing machine. Empty the fridge. Wash and put away all dishes. Take rubbish to the bins at the end of the lane. Close all windows and lock the back door. Turn the heating down to 12 degrees. Leave the keys on the kitchen table and pull the front door shut behind you."
===
Kubernetes deployment notes
To deploy a new version, update the image tag in `k8s/deployment.yaml`, then run:

    kubectl apply -f k8s/deployment.yaml
    kubectl rollout status deployment/api

If the rollout gets stuck, check the events with `kubectl describe deployment api`. To roll back, run `kubectl rollout undo deployment/api`. Never edit resources directly in the production cluster without a ticket.
===
Dialogue from my Spanish textbook that I'm practising:
A: ¿Dónde está la estación de tren?
B: Siga todo recto y gire a la izquierda en el semáforo.
A: ¿Está lejos?
B: No, está a unos cinco minutos a pie.
A: Muchas gracias.
B: De nada.
Can you give me the English translation and explain the "Siga" form?
===
Emergency contact card (kitchen fridge)
If someone is choking: encourage them to cough. If they can't, give up to 5 back blows, then up to 5 abdominal thrusts. Call 999 if it doesn't clear.
If there's a gas smell: don't use light switches, open windows, turn off the gas at the meter, leave the house and call the gas emergency line.
Doctor: 01632 960555. Neighbour (Sue, no. 14): 07700 900456.
===
Customer chat log for training new agents:
Customer: hi i want to cancel my gym membership
Agent: Hi! I can help with that. May I ask the reason for cancelling? It helps us improve.
Customer: moving to another city
Agent: Thanks for letting us know. We have clubs in 40 cities; would you like to transfer instead?
Customer: no thanks
Agent: No problem. Your cancellation is confirmed and takes effect at the end of this billing month. You'll get an email shortly.
===
Spell list for Friday's test (Year 3): because, friend, could, would, should, people, water, again, thought, through. Practise by writing each word three times, then cover it and write it from memory. Ask a grown-up to test you on Thursday night. Remember: "because" — Big Elephants Can Always Understand Small Elephants!
===
Hi! I manage a small Airbnb and I wrote this welcome message for guests. Could you make it shorter and warmer?

"Welcome. Check-in is at 3pm and check-out is at 11am. The Wi-Fi network is 'Seaview' and the password is on the fridge. The heating is controlled by the thermostat in the hall; please don't set it above 21. Bins go out on Wednesday. Do not use the fireplace. There is a first aid kit under the sink. Please let us know if anything is broken. Enjoy your stay."
===
Museum audio guide, stop 7
"You are now standing in front of 'The Fighting Temeraire' by J. M. W. Turner, painted in 1839. Look closely at the left side of the painting. The ghostly old warship is being towed to be broken up by a small, dark steam tug. Now turn your eyes to the right, where the sun is setting in a blaze of red and gold. Many see it as a farewell to the age of sail. When you're ready, walk through the doorway on your left to stop 8."
""")
